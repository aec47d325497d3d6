# The project's TF-M build options (TFM_EXTRA_CONFIG_PATH, read before the platform's and the
# profile's defaults, so these win). TF-M's tree is not edited; see docs/firmware.md.

# BL2 measures the secure and the non-secure image separately, so the attestation token names
# each (SW components "SPE" and "NSPE") and a changed NS image is told apart from a changed
# secure one. Profile Small's default is one combined image.
set(MCUBOOT_IMAGE_NUMBER 2 CACHE STRING "S and NS images signed and measured separately")

# The sensor partition (device/firmware/partition/)
set(TFM_EXTRA_MANIFEST_LIST_FILES ${CMAKE_CURRENT_LIST_DIR}/../partition/manifest_list.yaml
    CACHE PATH "" FORCE)
set(TFM_EXTRA_PARTITION_PATHS ${CMAKE_CURRENT_LIST_DIR}/../partition CACHE PATH "" FORCE)
