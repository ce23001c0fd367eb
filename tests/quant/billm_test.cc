// Tests for quant/billm (filled in with the method).
#include "quant/billm.h"

#include <catch2/catch.hpp>
