/*
 * psagw_tfm_config.h: the project's overlay on TF-M's Profile Small configuration (passed as
 * PROJECT_CONFIG_HEADER_FILE; TF-M's tree is not edited). Profile Small stays as it is except:
 *
 * - single-part crypto on: Mbed TLS 3.6's TLS 1.2 record layer (ssl_msg.c with
 *   MBEDTLS_USE_PSA_CRYPTO) protects each record with one psa_aead_encrypt/decrypt call, which
 *   Profile Small's crypto partition otherwise answers with PSA_ERROR_NOT_SUPPORTED
 *   (docs/firmware.md, "Our configuration").
 * - two more builtin key slots in TF-M's key loader: the TLS-PSK and the sensor records' group
 *   key (device/firmware/tfm/psagw_builtin_keys.c).
 */
#ifndef PSAGW_TFM_CONFIG_H
#define PSAGW_TFM_CONFIG_H

#define CRYPTO_SINGLE_PART_FUNCS_DISABLED 0
#define TFM_BUILTIN_MAX_KEYS 5 /* slots 3 and 4: psagw_builtin_keys.c */

#endif
