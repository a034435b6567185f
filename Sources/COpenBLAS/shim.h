// OpenBLAS's CBLAS interface and its thread-count control. Only NLTensor imports this module.
#include <cblas.h>
