// Tests for quant/awq (filled in with the method).
#include "quant/awq.h"

#include <catch2/catch.hpp>
