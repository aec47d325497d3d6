# The two commands a newcomer needs (see README.md):
#   make demo   bootstrap, build, run the end-to-end demo, stop by itself
#   make test   bootstrap, build, run every test through CTest (plain, ASan+UBSan and
#               ThreadSanitizer builds), then each fuzz target briefly (FUZZ_SECONDS, default 20),
#               then the Cortex-M33 footprint build (scripts/footprint.sh), then the Debian
#               packages: built, lintian-checked, installed and removed (as root), then the
#               aarch64 cross-build and its tests under qemu-user
# Other targets: build, bench, soak, abuse, fuzz, footprint, deb [DEB_ARCH=arm64], test-deb,
# arm64, test-arm64, clean.

BUILD      ?= build
BUILD_SAN  ?= build-asan
BUILD_TSAN ?= build-tsan
JOBS       ?= $(shell nproc)

FUZZ_SECONDS ?= 20

.PHONY: all bootstrap build build-asan build-tsan test test-plain test-asan test-tsan test-fuzz \
	demo bench soak abuse fuzz footprint test-footprint deb test-deb arm64 test-arm64 \
	firmware test-firmware dashboard-shot clean

all: build

bootstrap:
	@scripts/bootstrap.sh

build: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

build-asan: bootstrap
	@cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DPSAGW_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_SAN) -j $(JOBS) -- --no-print-directory

build-tsan: bootstrap
	@cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_C_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null
	@cmake --build $(BUILD_TSAN) -j $(JOBS) -- --no-print-directory

test-plain: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS)

# a data race aborts the gateway (halt_on_error), which fails the test that drove it
test-tsan: build-tsan
	@cd $(BUILD_TSAN) && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j $(JOBS)

test-fuzz: bootstrap
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

test-footprint: bootstrap
	@scripts/footprint.sh build-footprint

footprint: test-footprint

# The TF-M Profile Small firmware for QEMU mps2-an521 (docs/firmware.md) in build-fw/images/,
# and its end-to-end test against the gateway (tests/firmware/)
firmware: build
	@scripts/build-firmware.sh build-fw
	@$(BUILD)/device/psadev-fw refvals --images build-fw/images > build-fw/images/refvals.json
	@echo "firmware: reference values in build-fw/images/refvals.json (psagw refval import)"

test-firmware: firmware
	@PSAGW=$(BUILD)/gateway/psagw PSADEV=$(BUILD)/device/psadev PSADEV_FW=$(BUILD)/device/psadev-fw \
	  FW_IMAGES=$(CURDIR)/build-fw/images bash tests/firmware/test_firmware.sh

# Debian packages (psagw, psagw-tools) in build-deb/, lintian-checked (docs/packaging.md);
# DEB_ARCH=arm64 cross-builds them for 64-bit Arm
DEB_ARCH ?= $(shell dpkg --print-architecture)
deb: bootstrap
	@if [ "$(DEB_ARCH)" = arm64 ]; then scripts/arm64.sh deps; fi
	@scripts/deb.sh $(DEB_ARCH)

# installs them on this machine, runs the installed daemon as its unit would, removes them
# (root on Debian only; skipped otherwise)
test-deb: deb
	@tests/integration/test_deb.sh

# the dashboard's picture in docs/ (headless Chromium; tests/integration/test_dashboard.sh)
dashboard-shot: build
	@cd $(BUILD) && DASHBOARD_SCREENSHOT=$(CURDIR)/docs/dashboard.png ctest -R integration.dashboard --output-on-failure

# the gateway and psadev cross-built for aarch64 (build-arm64/), and their tests under
# qemu-user against this machine's clients (docs/arm64.md)
arm64: bootstrap
	@scripts/arm64.sh build

test-arm64: arm64 build
	@scripts/arm64.sh test

test: test-plain test-asan test-tsan test-fuzz test-footprint test-firmware test-deb test-arm64

demo: build firmware
	@scripts/demo.sh $(BUILD)

bench: build
	@bench/run.sh $(BUILD)
	@bench/cloud.sh $(BUILD)

soak: build
	@bench/soak.sh $(BUILD)

abuse: build
	@bench/abuse.sh $(BUILD)

fuzz: bootstrap
	@scripts/fuzz.sh

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_TSAN) build-fuzz build-footprint build-deb build-arm64 build-fw
