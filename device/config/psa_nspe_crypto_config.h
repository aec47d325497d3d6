/* psa_nspe_crypto_config.h: the algorithms the NSPE may ask of the SPE (the same set). */
#include "psa_spe_crypto_config.h"
