/*
 * psagw_secure.h: what the project's secure-side additions to TF-M share (device/firmware/tfm/
 * and the sensor partition).
 */
#ifndef PSAGW_SECURE_H
#define PSAGW_SECURE_H

#include "psagw_factory.h"
#include "psagw_key_ids.h"

/* The factory record in the device's non-volatile memory, or NULL when there is none or it
 * does not check (magic, version, size, CRC, a device id). */
const struct psagw_factory_record *psagw_factory(void);

#endif
