/*
 * psagw_key_ids.h: the platform builtin keys the project adds to TF-M's (HUK, IAK), by the key
 * ids callers use. TF-M reserves 0x7FFF816B..0x7FFF817B for platform-specific builtin keys
 * (interface/include/crypto_keys/tfm_builtin_key_ids.h).
 *
 * PSAGW_KEY_ID_TLS_PSK: the TLS-PSK, for the non-secure side's TLS 1.2 client, by id only:
 *   usage DERIVE with PSA_ALG_TLS12_PSK_TO_MS(SHA-256), no EXPORT. TF-M hands a caller of a
 *   DERIVE builtin key a key derived for that caller, HKDF-SHA256(salt empty, IKM = the key,
 *   info = the caller's client id as int32 little-endian), 16 bytes here: that derived key is
 *   the PSK the gateway registers (psadev-fw provision computes it for the manifest).
 * PSAGW_KEY_ID_GROUP: the sensor records' group key, for the sensor partition only
 *   (HMAC-SHA256, SIGN_MESSAGE: record keys are HMAC(group key, label || device id)).
 */
#ifndef PSAGW_KEY_IDS_H
#define PSAGW_KEY_IDS_H

#define PSAGW_KEY_ID_TLS_PSK 0x7FFF816Bu
#define PSAGW_KEY_ID_GROUP 0x7FFF816Cu

/* The client id TF-M gives the non-secure side (TrustZone NS agent, no NS client
 * identification): the user in the PSK's policy and in its derivation. */
#define PSAGW_NS_CLIENT_ID (-0x3c000000)

#endif
