/*
 * cmd_refval.c: `psagw refval ...`, the attestation reference values in the registry:
 * implementation IDs and software measurements (with the signer ID that must come with
 * them). The daemon reloads them within a second of a change (attest.c).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hex.h"
#include "iat_json.h"
#include "registry.h"

struct refval_opts {
    const char *registry;
    const char *config;
    bool create; /* --create */
    const char *implementation;
    const char *measurement;
    const char *signer;
    const char *type;
    const char *label;
    bool json;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: psagw refval add --implementation HEX [--label TEXT]\n"
            "       psagw refval add --measurement HEX [--signer-id HEX] [--type T] [--label TEXT]\n"
            "       psagw refval list [--json]\n"
            "       psagw refval remove ID\n"
            "       psagw refval import FILE.json   (all or nothing; '-' reads stdin)\n"
            "options for all: [--registry FILE] [--config FILE]\n");
}

static int refval_add(struct registry *r, const struct refval_opts *o)
{
    struct refval rv = {0};
    if (!!o->implementation == !!o->measurement) {
        fprintf(stderr, "psagw refval add: give --implementation or --measurement\n");
        return 2;
    }
    rv.kind = o->implementation ? REFVAL_IMPLEMENTATION : REFVAL_MEASUREMENT;
    int n = hex_parse(o->implementation ? o->implementation : o->measurement, rv.value,
                      sizeof(rv.value));
    if (n <= 0) {
        fprintf(stderr, "psagw refval add: the value must be 1..64 bytes of hex\n");
        return 2;
    }
    rv.value_len = (size_t)n;
    if (o->signer) {
        if (rv.kind == REFVAL_IMPLEMENTATION) {
            fprintf(stderr, "psagw refval add: --signer-id goes with --measurement\n");
            return 2;
        }
        n = hex_parse(o->signer, rv.signer_id, sizeof(rv.signer_id));
        if (n <= 0) {
            fprintf(stderr, "psagw refval add: --signer-id must be 1..64 bytes of hex\n");
            return 2;
        }
        rv.signer_len = (size_t)n;
    }
    if ((o->type && strlen(o->type) >= sizeof(rv.type)) ||
        (o->label && strlen(o->label) >= sizeof(rv.label))) {
        fprintf(stderr, "psagw refval add: --type or --label too long\n");
        return 2;
    }
    snprintf(rv.type, sizeof(rv.type), "%s", o->type ? o->type : "");
    snprintf(rv.label, sizeof(rv.label), "%s", o->label ? o->label : "");
    if (registry_refval_add(r, &rv) != REG_OK) {
        fprintf(stderr, "psagw refval add: %s\n", registry_error(r));
        return 1;
    }
    printf("added reference value %lld (%s)\n", (long long)rv.id,
           rv.kind == REFVAL_IMPLEMENTATION ? "implementation ID" : "measurement");
    return 0;
}

struct list_state {
    bool json;
    json_t *impl, *meas;
};

static int print_refval(const struct refval *rv, void *arg)
{
    struct list_state *st = arg;
    if (st->json) {
        json_array_append_new(rv->kind == REFVAL_IMPLEMENTATION ? st->impl : st->meas,
                              iat_json_refval(rv));
        return 0;
    }
    char value[129], signer[129];
    printf("%-5lld %-14s %-8s %s", (long long)rv->id,
           rv->kind == REFVAL_IMPLEMENTATION ? "implementation" : "measurement",
           rv->type[0] ? rv->type : "-", hex_encode(rv->value, rv->value_len, value, sizeof(value)));
    if (rv->signer_len)
        printf(" signer=%s", hex_encode(rv->signer_id, rv->signer_len, signer, sizeof(signer)));
    if (rv->label[0])
        printf(" \"%s\"", rv->label);
    printf("\n");
    return 0;
}

static int refval_list(struct registry *r, bool json)
{
    struct list_state st = {.json = json, .impl = json_array(), .meas = json_array()};
    if (!json)
        printf("%-5s %-14s %-8s %s\n", "ID", "KIND", "TYPE", "VALUE");
    int rc = registry_refval_list(r, print_refval, &st);
    if (rc == REG_OK && json) {
        json_t *o = json_object();
        json_object_set(o, "implementation_ids", st.impl);
        json_object_set(o, "measurements", st.meas);
        json_dumpf(o, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(o);
    }
    json_decref(st.impl);
    json_decref(st.meas);
    if (rc != REG_OK) {
        fprintf(stderr, "psagw refval list: %s\n", registry_error(r));
        return 1;
    }
    return 0;
}

struct import_state {
    struct registry *r;
    size_t added, present;
    char err[256];
};

static int import_one(const struct refval *rv, void *arg)
{
    struct import_state *st = arg;
    struct refval copy = *rv;
    int rc = registry_refval_add(st->r, &copy);
    if (rc == REG_EXISTS) {
        st->present++; /* re-importing the same file is not an error */
        return 0;
    }
    if (rc != REG_OK) {
        snprintf(st->err, sizeof(st->err), "%s", registry_error(st->r));
        return 1;
    }
    st->added++;
    return 0;
}

static int refval_import(struct registry *r, const char *path)
{
    json_error_t jerr;
    json_t *doc = strcmp(path, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
                                         : json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        fprintf(stderr, "psagw refval import: %s:%d: %s\n", path, jerr.line, jerr.text);
        return 1;
    }
    struct import_state st = {.r = r};
    char err[256];
    if (registry_begin(r) != REG_OK) {
        fprintf(stderr, "psagw refval import: %s\n", registry_error(r));
        json_decref(doc);
        return 1;
    }
    /* a manifest carries its reference values under "refvals" */
    const json_t *obj = json_object_get(doc, "refvals") ? json_object_get(doc, "refvals") : doc;
    int rc = iat_json_refvals(obj, import_one, &st, err, sizeof(err));
    json_decref(doc);
    if (rc != 0) {
        registry_rollback(r);
        fprintf(stderr, "psagw refval import: %s: %s%s%s (nothing imported)\n", path, err,
                st.err[0] ? ": " : "", st.err);
        return 1;
    }
    if (registry_commit(r) != REG_OK) {
        fprintf(stderr, "psagw refval import: %s\n", registry_error(r));
        return 1;
    }
    printf("imported %zu reference values (%zu already registered)\n", st.added, st.present);
    return 0;
}

int cmd_refval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"registry", required_argument, NULL, 'r'},
        {"config", required_argument, NULL, 'c'},
        {"implementation", required_argument, NULL, 'i'},
        {"measurement", required_argument, NULL, 'm'},
        {"signer-id", required_argument, NULL, 's'},
        {"type", required_argument, NULL, 't'},
        {"label", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"create", no_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    struct refval_opts o = {0};
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'r': o.registry = optarg; break;
        case 'c': o.config = optarg; break;
        case 'C': o.create = true; break;
        case 'i': o.implementation = optarg; break;
        case 'm': o.measurement = optarg; break;
        case 's': o.signer = optarg; break;
        case 't': o.type = optarg; break;
        case 'l': o.label = optarg; break;
        case 'j': o.json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int nargs = argc - optind;
    bool takes_arg = strcmp(sub, "remove") == 0 || strcmp(sub, "import") == 0;
    bool known = takes_arg || strcmp(sub, "add") == 0 || strcmp(sub, "list") == 0;
    if (!known || nargs != (takes_arg ? 1 : 0)) {
        if (!known)
            fprintf(stderr, "psagw refval: unknown subcommand '%s'\n", sub);
        usage(stderr);
        return 2;
    }
    bool writes = strcmp(sub, "list") != 0;
    struct registry *r = cli_open_registry(o.registry, o.config, writes, o.create, "psagw refval");
    if (!r)
        return 1;
    int ret;
    if (strcmp(sub, "add") == 0) {
        ret = refval_add(r, &o);
    } else if (strcmp(sub, "list") == 0) {
        ret = refval_list(r, o.json);
    } else if (strcmp(sub, "import") == 0) {
        ret = refval_import(r, argv[optind]);
    } else {
        char *end;
        long long id = strtoll(argv[optind], &end, 10);
        if (*end || id <= 0) {
            fprintf(stderr, "psagw refval remove: ID must be a number from `psagw refval list`\n");
            ret = 2;
        } else if (registry_refval_remove(r, id) != REG_OK) {
            fprintf(stderr, "psagw refval remove: %s\n", registry_error(r));
            ret = 1;
        } else {
            printf("removed reference value %lld\n", id);
            ret = 0;
        }
    }
    registry_close(r);
    return ret;
}
