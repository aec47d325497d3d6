#!/usr/bin/python3
"""Flash and RAM of the firmware's real images, by component, from the linker maps
(docs/footprint.md). Usage: scripts/firmware-footprint.py BUILD_FW_DIR

Flash = .text/.rodata (and .data's initial values); RAM = .data + .bss (+ the NS image's stack
and heap, which are sections of their own). Only what the linker kept is counted."""
import re
import sys
from collections import Counter

def sections(map_path):
    """(section, size, object path) for every input section the linker placed."""
    text = open(map_path).read()
    lines = text[text.index('Linker script and memory map'):].split('\n')
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r'^ (\.\S+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S+)', line)
        if not m:
            m1 = re.match(r'^ (\.\S+)\s*$', line)
            if m1 and i + 1 < len(lines):
                parts = lines[i + 1].split()
                if len(parts) >= 3 and parts[0].startswith('0x') and parts[1].startswith('0x'):
                    out.append((m1.group(1), int(parts[0], 16), int(parts[1], 16), parts[2]))
                    i += 2
                    continue
            i += 1
            continue
        out.append((m.group(1), int(m.group(2), 16), int(m.group(3), 16), m.group(4)))
        i += 1
    return [(s, size, obj) for s, addr, size, obj in out if size and addr]

def tally(map_path, classify):
    flash, ram = Counter(), Counter()
    for sec, size, obj in sections(map_path):
        comp = classify(obj)
        if sec.startswith(('.text', '.rodata')):
            flash[comp] += size
        elif sec.startswith('.data'):
            flash[comp] += size
            ram[comp] += size
        elif sec.startswith(('.bss', 'COMMON')):
            ram[comp] += size
    return flash, ram

def member(obj):
    """The object's file name; for an archive member, the member's."""
    m = re.search(r'\(([^)]+)\)$', obj)
    return m.group(1) if m else obj.split('/')[-1]

def classify_s(obj):
    name = member(obj)
    if 'psagw_sensor' in obj or name.startswith(('record.o', 'cbor.o')) or \
            'intermedia_psagw_sensor' in name or 'load_info_psagw_sensor' in name:
        return 'our sensor partition (+ record, CBOR)'
    if name.startswith('psagw_'):
        return 'our platform additions (NV flash, provisioning, builtin keys, fault record)'
    return 'TF-M Profile Small (SPM, crypto, ITS, attestation, platform)'

def classify_ns(obj):
    name = member(obj)
    if 'libmbedtls_ns' in obj:
        return 'Mbed TLS 3.6 TLS 1.2 PSK client (pure PSA)'
    if name.startswith('mqtt_'):
        return 'MQTT 5 client and codec'
    if name.startswith(('app.', 'tls_client.')):
        return 'application and TLS glue'
    if 'tfm_ns.dir' in obj and 'tfm_tz_psa_ns_api' not in name:
        return 'firmware platform (main, modem link, log, sensor client)'
    if 'tfm_api_ns' in obj or 'tfm_tz_psa_ns_api' in name or 's_veneers' in name:
        return "TF-M's NS interface"
    if 'platform_ns' in obj:
        return 'board startup (TF-M platform_ns)'
    return 'C library (newlib nano, libgcc)'

def show(title, flash, ram, stack_heap=None):
    print(title)
    print('  %-76s %7s %7s' % ('component', 'flash', 'RAM'))
    for comp in sorted(flash, key=lambda c: -flash[c]):
        print('  %-76s %7d %7d' % (comp, flash[comp], ram[comp]))
    print('  %-76s %7d %7d' % ('total', sum(flash.values()), sum(ram.values())))

def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'build-fw'
    flash, ram = tally(out + '/spe/bin/tfm_s.map', classify_s)
    show('Secure image (tfm_s.axf): TF-M v2.1.6 Profile Small + the project', flash, ram)
    ours = sum(v for k, v in flash.items() if k.startswith('our'))
    print('  the project\'s secure code: %d B flash (target <= 6144)\n' % ours)
    flash, ram = tally(out + '/ns/bin/tfm_ns.map', classify_ns)
    stack = ram.pop('C library (newlib nano, libgcc)', 0)
    show('Non-secure image (tfm_ns.axf)', flash, ram)
    budget = sum(v for k, v in flash.items()
                 if not k.startswith(("TF-M's", 'board', 'C library')))
    print('  stack, heap and C library data: %d B RAM' % stack)
    print('  in the link-time flash budget (Mbed TLS, MQTT, application, platform): %d B '
          '(<= 24576)' % budget)

main()
