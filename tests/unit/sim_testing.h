#pragma once

// Helpers of the simulator's unit tests.

#include <gtest/gtest.h>

#include "backends/devices/catalog.h"

namespace cb::testing {

/// The repository's device catalog, loaded once.
inline const DeviceCatalog& Catalog() {
  static DeviceCatalog c = [] {
    DeviceCatalog cat;
    EXPECT_TRUE(DeviceCatalog::Load(DefaultCatalogDir(), &cat).ok());
    return cat;
  }();
  return c;
}

}  // namespace cb::testing
