// sim.cpp: see sim.h.
#include "sim.h"

namespace emu::sim {

bool available() { return false; }

}  // namespace emu::sim
