// doctest's runner and main(), compiled once for every unit test program: each test_*.cpp
// holds only its cases (building the implementation into each of them took most of a
// clean build's time).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
