// sim.h: the SIMT emulator (device `sim`) that will run native/cuda's kernel sources on the CPU.
//
// This is the thin layer the Foundation issue asks for: it compiles into every build and tells
// the addon the emulator is not there yet, so `sim` is reported as unavailable with a clear
// DeviceError. The CUDA backend issue replaces it with the fiber-based emulator described in
// shared/reference/simt-emulator.md.
#pragma once

namespace emu::sim {

bool available();

}  // namespace emu::sim
