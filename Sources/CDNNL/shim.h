// oneDNN's C API (Debian's libdnnl-dev 2.6), and the macro Swift cannot import as a function.
// Only NLLayers imports this module (and its tests, to name layouts).
#include <oneapi/dnnl/dnnl.h>

static inline void *cdnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
