// Tests for quant/smoothquant (filled in with the method).
#include "quant/smoothquant.h"

#include <catch2/catch.hpp>
