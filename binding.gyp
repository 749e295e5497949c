# binding.gyp: the node-gyp fallback build, used by scripts/build-addon.mjs when CMake is not
# installed. It builds the CPU and sim parts only (no CUDA) from the same source lists as
# CMakeLists.txt (native/sources.json), so the two cannot drift.
{
  "variables": {
    "emu_sources": "require('./native/sources.json')"
  },
  "target_defaults": {
    "cflags_cc": ["-std=c++17", "-O3", "-fno-strict-aliasing", "-fno-math-errno", "-fexceptions", "-Wno-unknown-pragmas", "-Wno-unused-parameter"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"]
  },
  "targets": [
    {
      "target_name": "emu_cpu_avx512",
      "type": "static_library",
      "sources": ["<!@(node -p \"<(emu_sources).cpuKernels.join(' ')\")"],
      "defines": ["EMU_ISA=avx512"],
      "cflags_cc": ["<!@(node -p \"<(emu_sources).isaFlags.avx512.join(' ')\")"]
    },
    {
      "target_name": "emu_cpu_avx2",
      "type": "static_library",
      "sources": ["<!@(node -p \"<(emu_sources).cpuKernels.join(' ')\")"],
      "defines": ["EMU_ISA=avx2"],
      "cflags_cc": ["<!@(node -p \"<(emu_sources).isaFlags.avx2.join(' ')\")"]
    },
    {
      "target_name": "emu_cpu_generic",
      "type": "static_library",
      "sources": ["<!@(node -p \"<(emu_sources).cpuKernels.join(' ')\")"],
      "defines": ["EMU_ISA=generic"]
    },
    {
      "target_name": "emu_native",
      "sources": [
        "<!@(node -p \"<(emu_sources).core.join(' ')\")",
        "<!@(node -p \"<(emu_sources).cudaAbsent.join(' ')\")"
      ],
      "dependencies": ["emu_cpu_generic", "emu_cpu_avx2", "emu_cpu_avx512"],
      "ldflags": ["-Wl,-z,now"]
    }
  ]
}
