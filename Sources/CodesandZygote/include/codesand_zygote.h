// See zygote_library.c: this library exports the functions of csandbox.h.
#include "../../CSandbox/include/csandbox.h"
