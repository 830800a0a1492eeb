/*
 * A fake libnvidia-ml.so.1 for Ballast's agent tests (no GPU needed).
 *
 * It exports the NVML entry points that nvidia-ml-py (pynvml) looks up for
 * the calls the agent makes, and answers them from a fixture file named by
 * $FAKE_NVML_FIXTURE, re-read on every call so a test can change the
 * "hardware" while the agent runs (write a temp file and rename it over).
 *
 * Fixture: one key=value per line, '#' starts a comment.
 *   init_error=N            nvmlInit* returns N (0: success)
 *   driver=550.54.15
 *   count=2                 GPUs visible (lower it to make a GPU vanish)
 *   events=0                event sets unsupported (NVML_ERROR_NOT_SUPPORTED)
 *   gpu.I.name=NVIDIA H100 80GB HBM3
 *   gpu.I.uuid=GPU-...
 *   gpu.I.mem_total=BYTES   gpu.I.mem_used=BYTES   (free = total - used)
 *   gpu.I.util=PCT          gpu.I.mem_util=PCT
 *   gpu.I.power_mw=MW       gpu.I.temp=C
 *   gpu.I.clocks=BITMASK    clock-event (throttle) reasons
 *   gpu.I.ecc_dbe=N         uncorrected volatile ECC errors
 *   gpu.I.remap=CORR,UNC,PENDING,FAILURE
 *   gpu.I.lost=1            every call on the GPU returns NVML_ERROR_GPU_IS_LOST
 *   gpu.I.unsupported=power,temp,...   these calls return NVML_ERROR_NOT_SUPPORTED
 *                           (names: name uuid memory util power temp clocks ecc remap events
 *                            gpm mig)
 *   gpu.I.xid=79  gpu.I.xid_seq=1      deliver XID 79 once per new xid_seq value
 *
 * GPM (nvmlGpm*; every key optional, so older fixtures read as an H100 with GPM):
 *   gpu.I.gpm=0             nvmlGpmQueryDeviceSupport says unsupported (default 1)
 *   gpu.I.gr_active=PCT     GRAPHICS_UTIL (default: util)
 *   gpu.I.sm_active=PCT     SM_UTIL (default: util)
 *   gpu.I.sm_occupancy=PCT  SM_OCCUPANCY (default 0)
 *   gpu.I.dram_active=PCT   DRAM_BW_UTIL (default: mem_util)
 *   gpu.I.tensor_active=PCT ANY_TENSOR_UTIL (default 0)
 *   A sample captures these values when taken; nvmlGpmMetricsGet reports the
 *   newer sample's values (the rate over the interval it ends), and refuses
 *   samples of different GPUs or in the wrong order (INVALID_ARGUMENT).
 *   fakeNvmlLiveGpmSamples() (not NVML) counts allocated, unfreed samples.
 *
 * MIG (nvmlDeviceGetMigMode etc.; absent keys: MIG disabled, 0 devices):
 *   gpu.I.mig=1             current MIG mode   gpu.I.mig_pending=N (default: mig)
 *   gpu.I.mig_max=7         nvmlDeviceGetMaxMigDeviceCount
 *   gpu.I.mig_devices=N     MIG devices in slots 0..N-1 (lower it: devices vanish)
 *   gpu.I.mig.J.uuid=MIG-...            (default MIG-fake-IIII-J)
 *   gpu.I.mig.J.gi=ID  gpu.I.mig.J.ci=ID  GPU / compute instance ids (default J+1, 0)
 *   gpu.I.mig.J.slices=N  gpu.I.mig.J.ci_slices=N   GPU / compute instance slices (1, slices)
 *   gpu.I.mig.J.mem_total=BYTES  gpu.I.mig.J.mem_used=BYTES   (memorySizeMB = total in MiB)
 *   gpu.I.mig.J.gone=1      the handle is returned, then every call on it answers NOT_FOUND
 *                           (a device destroyed between enumeration and reading)
 *
 * Build: cc -shared -fPIC -o libnvidia-ml.so.1 fake_nvml.c
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_TIMEOUT 10
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#define NVML_ERROR_UNKNOWN 999

#define MAX_GPUS 64
#define MAX_MIG 8
#define XID_CRITICAL 0x8ULL

typedef struct { int index; int mig; } fake_device; /* mig: slot of a MIG device, -1 for a GPU */
typedef fake_device *nvmlDevice_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType, eventData;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;
typedef struct { int registered[MAX_GPUS]; } fake_event_set;
typedef fake_event_set *nvmlEventSet_t;

static fake_device devices[MAX_GPUS];
static fake_device mig_devices[MAX_GPUS][MAX_MIG];
static long delivered_seq[MAX_GPUS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int initialized = 0;

/* Copy the value of `key` from the fixture into out; 1 if found. */
static int lookup(const char *key, char *out, size_t outlen) {
    const char *path = getenv("FAKE_NVML_FIXTURE");
    if (!path) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    size_t klen = strlen(key);
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            char *v = line + klen + 1;
            v[strcspn(v, "\r\n")] = 0;
            snprintf(out, outlen, "%s", v);
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

static long long num(const char *key, long long dflt) {
    char buf[256];
    return lookup(key, buf, sizeof buf) ? strtoll(buf, NULL, 0) : dflt;
}

static long long gnum(int i, const char *field, long long dflt) {
    char key[128];
    snprintf(key, sizeof key, "gpu.%d.%s", i, field);
    return num(key, dflt);
}

static int gstr(int i, const char *field, char *out, size_t outlen) {
    char key[128];
    snprintf(key, sizeof key, "gpu.%d.%s", i, field);
    return lookup(key, out, outlen);
}

/* Common checks for a call on one device: initialised, present, not lost, supported. */
static nvmlReturn_t check(nvmlDevice_t d, const char *call) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!d || d < devices || d >= devices + MAX_GPUS) return NVML_ERROR_INVALID_ARGUMENT;
    int i = d->index;
    if (i >= num("count", 0)) return NVML_ERROR_GPU_IS_LOST;
    if (gnum(i, "lost", 0)) return NVML_ERROR_GPU_IS_LOST;
    char unsup[512];
    if (gstr(i, "unsupported", unsup, sizeof unsup)) {
        char *save = NULL;
        for (char *tok = strtok_r(unsup, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            if (strcmp(tok, call) == 0) return NVML_ERROR_NOT_SUPPORTED;
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    nvmlReturn_t r = (nvmlReturn_t)num("init_error", 0);
    if (r == NVML_SUCCESS) initialized = 1;
    return r;
}
nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlShutdown(void) {
    initialized = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case 9: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    char buf[128] = "550.54.15";
    lookup("driver", buf, sizeof buf);
    if (strlen(buf) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(version, buf);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    long long n = num("count", 0);
    *count = (unsigned int)(n < 0 ? 0 : n > MAX_GPUS ? MAX_GPUS : n);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (index >= MAX_GPUS || (long long)index >= num("count", 0)) return NVML_ERROR_INVALID_ARGUMENT;
    devices[index].index = (int)index;
    devices[index].mig = -1;
    *device = &devices[index];
    return NVML_SUCCESS;
}

/* MIG device handles: a slot under a GPU, valid while the fixture lists it. */
static int is_mig(nvmlDevice_t d) {
    return d && d >= &mig_devices[0][0] && d < &mig_devices[0][0] + MAX_GPUS * MAX_MIG;
}

static long long mnum(int i, int j, const char *field, long long dflt) {
    char key[128];
    snprintf(key, sizeof key, "gpu.%d.mig.%d.%s", i, j, field);
    return num(key, dflt);
}

static nvmlReturn_t mig_check(nvmlDevice_t d) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    int i = d->index, j = d->mig;
    if (i >= num("count", 0) || gnum(i, "lost", 0)) return NVML_ERROR_GPU_IS_LOST;
    if (!gnum(i, "mig", 0) || j >= gnum(i, "mig_devices", 0)) return NVML_ERROR_NOT_FOUND;
    if (mnum(i, j, "gone", 0)) return NVML_ERROR_NOT_FOUND;
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_str(nvmlDevice_t d, const char *call, const char *field, const char *dflt,
                             char *out, unsigned int length) {
    nvmlReturn_t r = check(d, call);
    if (r) return r;
    char buf[256];
    if (!gstr(d->index, field, buf, sizeof buf)) snprintf(buf, sizeof buf, dflt, d->index);
    if (strlen(buf) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, buf);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    return copy_str(d, "name", "name", "Fake GPU %d", name, length);
}
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length) {
    if (is_mig(d)) {
        nvmlReturn_t r = mig_check(d);
        if (r) return r;
        char key[128], buf[256];
        snprintf(key, sizeof key, "gpu.%d.mig.%d.uuid", d->index, d->mig);
        if (!lookup(key, buf, sizeof buf))
            snprintf(buf, sizeof buf, "MIG-fake-%04d-%d", d->index, d->mig);
        if (strlen(buf) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
        strcpy(uuid, buf);
        return NVML_SUCCESS;
    }
    return copy_str(d, "uuid", "uuid", "GPU-fake-%04d", uuid, length);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    if (is_mig(d)) {
        nvmlReturn_t r = mig_check(d);
        if (r) return r;
        m->total = (unsigned long long)mnum(d->index, d->mig, "mem_total", 10LL << 30);
        m->used = (unsigned long long)mnum(d->index, d->mig, "mem_used", 0);
        m->free = m->total > m->used ? m->total - m->used : 0;
        return NVML_SUCCESS;
    }
    nvmlReturn_t r = check(d, "memory");
    if (r) return r;
    m->total = (unsigned long long)gnum(d->index, "mem_total", 80LL << 30);
    m->used = (unsigned long long)gnum(d->index, "mem_used", 0);
    m->free = m->total > m->used ? m->total - m->used : 0;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    nvmlMemory_t v1;
    nvmlReturn_t r = nvmlDeviceGetMemoryInfo(d, &v1);
    if (r) return r;
    m->total = v1.total;
    m->reserved = 0;
    m->free = v1.free;
    m->used = v1.used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    nvmlReturn_t r = check(d, "util");
    if (r) return r;
    u->gpu = (unsigned int)gnum(d->index, "util", 0);
    u->memory = (unsigned int)gnum(d->index, "mem_util", 0);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
    nvmlReturn_t r = check(d, "power");
    if (r) return r;
    *mw = (unsigned int)gnum(d->index, "power_mw", 0);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *temp) {
    nvmlReturn_t r = check(d, "temp");
    if (r) return r;
    if (sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
    *temp = (unsigned int)gnum(d->index, "temp", 0);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *reasons) {
    nvmlReturn_t r = check(d, "clocks");
    if (r) return r;
    *reasons = (unsigned long long)gnum(d->index, "clocks", 0);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d, unsigned long long *reasons) {
    return nvmlDeviceGetCurrentClocksEventReasons(d, reasons);
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int errorType, int counterType,
                                         unsigned long long *count) {
    nvmlReturn_t r = check(d, "ecc");
    if (r) return r;
    /* Only uncorrected (1) volatile (0) counts are modelled; others read 0. */
    *count = (errorType == 1 && counterType == 0) ? (unsigned long long)gnum(d->index, "ecc_dbe", 0) : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned int *corr, unsigned int *unc,
                                       unsigned int *pending, unsigned int *failure) {
    nvmlReturn_t r = check(d, "remap");
    if (r) return r;
    char buf[128];
    unsigned int v[4] = {0, 0, 0, 0};
    if (gstr(d->index, "remap", buf, sizeof buf))
        sscanf(buf, "%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3]);
    *corr = v[0];
    *unc = v[1];
    *pending = v[2];
    *failure = v[3];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t d, unsigned long long *types) {
    nvmlReturn_t r = check(d, "events");
    if (r) return r;
    *types = XID_CRITICAL;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!num("events", 1)) return NVML_ERROR_NOT_SUPPORTED;
    *set = calloc(1, sizeof(fake_event_set));
    return *set ? NVML_SUCCESS : NVML_ERROR_UNKNOWN;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, nvmlEventSet_t set) {
    nvmlReturn_t r = check(d, "events");
    if (r) return r;
    if (!set) return NVML_ERROR_INVALID_ARGUMENT;
    if (types & XID_CRITICAL) {
        pthread_mutex_lock(&lock);
        set->registered[d->index] = 1;
        /* Only XIDs raised after registration are delivered. */
        delivered_seq[d->index] = gnum(d->index, "xid_seq", 0);
        pthread_mutex_unlock(&lock);
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!set) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int waited = 0;
    const unsigned int step = 50;  /* an XID is seen within 50 ms of the fixture change */
    /* Re-read the fixture only when it was replaced or rewritten (a stat every
       step instead of a parse), so a waiting agent costs what a real, blocked
       event wait would: next to nothing. The first pass always reads. */
    const char *path = getenv("FAKE_NVML_FIXTURE");
    struct stat seen = {0};
    int first = 1;
    for (;;) {
        struct stat now;
        int changed = first;
        if (path && stat(path, &now) == 0) {
            changed |= now.st_ino != seen.st_ino || now.st_mtim.tv_sec != seen.st_mtim.tv_sec
                       || now.st_mtim.tv_nsec != seen.st_mtim.tv_nsec || now.st_size != seen.st_size;
            seen = now;
        }
        first = 0;
        if (!changed) {
            if (waited >= timeoutms) return NVML_ERROR_TIMEOUT;
            struct timespec ts = {0, step * 1000000L};
            nanosleep(&ts, NULL);
            waited += step;
            continue;
        }
        long long count = num("count", 0);
        for (int i = 0; i < MAX_GPUS && i < count; i++) {
            if (!set->registered[i]) continue;
            long seq = (long)gnum(i, "xid_seq", 0);
            pthread_mutex_lock(&lock);
            int fresh = seq > delivered_seq[i];
            if (fresh) delivered_seq[i] = seq;
            pthread_mutex_unlock(&lock);
            if (fresh) {
                memset(data, 0, sizeof *data);
                data->device = &devices[i];
                data->eventType = XID_CRITICAL;
                data->eventData = (unsigned long long)gnum(i, "xid", 0);
                return NVML_SUCCESS;
            }
        }
        if (waited >= timeoutms) return NVML_ERROR_TIMEOUT;
        struct timespec ts = {0, step * 1000000L};
        nanosleep(&ts, NULL);
        waited += step;
    }
}
nvmlReturn_t nvmlEventSetWait(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
    return nvmlEventSetWait_v2(set, data, timeoutms);
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    free(set);
    return NVML_SUCCESS;
}

/* ---- MIG ---------------------------------------------------------------- */

typedef struct {
    unsigned int multiprocessorCount, sharedCopyEngineCount, sharedDecoderCount, sharedEncoderCount,
        sharedJpegCount, sharedOfaCount, gpuInstanceSliceCount, computeInstanceSliceCount;
    unsigned long long memorySizeMB;
} nvmlDeviceAttributes_t;

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *current, unsigned int *pending) {
    nvmlReturn_t r = check(d, "mig");
    if (r) return r;
    long long mode = gnum(d->index, "mig", 0);
    *current = (unsigned int)mode;
    *pending = (unsigned int)gnum(d->index, "mig_pending", mode);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int *count) {
    nvmlReturn_t r = check(d, "mig");
    if (r) return r;
    long long n = gnum(d->index, "mig_max", 7);
    *count = (unsigned int)(n < 0 ? 0 : n > MAX_MIG ? MAX_MIG : n);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int index, nvmlDevice_t *mig) {
    nvmlReturn_t r = check(d, "mig");
    if (r) return r;
    if (!gnum(d->index, "mig", 0)) return NVML_ERROR_INVALID_ARGUMENT; /* MIG disabled */
    if (index >= MAX_MIG || (long long)index >= gnum(d->index, "mig_max", 7))
        return NVML_ERROR_INVALID_ARGUMENT;
    if ((long long)index >= gnum(d->index, "mig_devices", 0)) return NVML_ERROR_NOT_FOUND;
    fake_device *m = &mig_devices[d->index][index];
    m->index = d->index;
    m->mig = (int)index;
    *mig = m;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t d, unsigned int *isMig) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    *isMig = is_mig(d) ? 1 : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t d, unsigned int *id) {
    if (!is_mig(d)) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t r = mig_check(d);
    if (r) return r;
    *id = (unsigned int)mnum(d->index, d->mig, "gi", d->mig + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t d, unsigned int *id) {
    if (!is_mig(d)) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t r = mig_check(d);
    if (r) return r;
    *id = (unsigned int)mnum(d->index, d->mig, "ci", 0);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetAttributes_v2(nvmlDevice_t d, nvmlDeviceAttributes_t *a) {
    if (!is_mig(d)) {
        nvmlReturn_t r = check(d, "attributes");
        if (r) return r;
        memset(a, 0, sizeof *a);
        a->multiprocessorCount = 132;
        a->gpuInstanceSliceCount = 7;
        a->computeInstanceSliceCount = 7;
        a->memorySizeMB = (unsigned long long)gnum(d->index, "mem_total", 80LL << 30) >> 20;
        return NVML_SUCCESS;
    }
    nvmlReturn_t r = mig_check(d);
    if (r) return r;
    memset(a, 0, sizeof *a);
    unsigned int slices = (unsigned int)mnum(d->index, d->mig, "slices", 1);
    a->gpuInstanceSliceCount = slices;
    a->computeInstanceSliceCount = (unsigned int)mnum(d->index, d->mig, "ci_slices", slices);
    a->multiprocessorCount = 16 * a->computeInstanceSliceCount;
    a->memorySizeMB = (unsigned long long)mnum(d->index, d->mig, "mem_total", 10LL << 30) >> 20;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetAttributes(nvmlDevice_t d, nvmlDeviceAttributes_t *a) {
    return nvmlDeviceGetAttributes_v2(d, a);
}

/* ---- GPM ---------------------------------------------------------------- */

#define GPM_GRAPHICS_UTIL 1
#define GPM_SM_UTIL 2
#define GPM_SM_OCCUPANCY 3
#define GPM_ANY_TENSOR_UTIL 5
#define GPM_DRAM_BW_UTIL 10
#define GPM_MAX_QUERY 1024

typedef struct {
    int device;   /* GPU index, -1 until taken */
    long seq;     /* order in which samples were taken */
    double gr, sm, occ, dram, tensor;
} fake_gpm_sample;
typedef fake_gpm_sample *nvmlGpmSample_t;

typedef struct { char *shortName, *longName, *unit; } nvmlGpmMetricInfo_t;
typedef struct {
    unsigned int metricId;
    nvmlReturn_t nvmlReturn;
    double value;
    nvmlGpmMetricInfo_t metricInfo;
} nvmlGpmMetric_t;
typedef struct {
    unsigned int version;
    unsigned int numMetrics;
    nvmlGpmSample_t sample1, sample2;
    nvmlGpmMetric_t metrics[]; /* pynvml passes NVML_GPM_METRIC_MAX of them; numMetrics are used */
} nvmlGpmMetricsGet_t;
typedef struct { unsigned int version, isSupportedDevice; } nvmlGpmSupport_t;

static long gpm_seq = 0;
static long gpm_live = 0;

/* Not NVML: how many GPM samples are allocated and not yet freed (for leak tests). */
long fakeNvmlLiveGpmSamples(void) {
    pthread_mutex_lock(&lock);
    long n = gpm_live;
    pthread_mutex_unlock(&lock);
    return n;
}

nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t d, nvmlGpmSupport_t *s) {
    nvmlReturn_t r = check(d, "gpm");
    if (r) return r;
    if (!s) return NVML_ERROR_INVALID_ARGUMENT;
    if (s->version != 1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    s->isSupportedDevice = gnum(d->index, "gpm", 1) ? 1 : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t *s) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!s) return NVML_ERROR_INVALID_ARGUMENT;
    *s = calloc(1, sizeof(fake_gpm_sample));
    if (!*s) return NVML_ERROR_UNKNOWN;
    (*s)->device = -1;
    pthread_mutex_lock(&lock);
    gpm_live++;
    pthread_mutex_unlock(&lock);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t s) {
    if (!s) return NVML_ERROR_INVALID_ARGUMENT;
    free(s);
    pthread_mutex_lock(&lock);
    gpm_live--;
    pthread_mutex_unlock(&lock);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t d, nvmlGpmSample_t s) {
    nvmlReturn_t r = check(d, "gpm");
    if (r) return r;
    if (!s) return NVML_ERROR_INVALID_ARGUMENT;
    int i = d->index;
    if (!gnum(i, "gpm", 1)) return NVML_ERROR_NOT_SUPPORTED;
    long long util = gnum(i, "util", 0);
    s->device = i;
    s->gr = (double)gnum(i, "gr_active", util);
    s->sm = (double)gnum(i, "sm_active", util);
    s->occ = (double)gnum(i, "sm_occupancy", 0);
    s->dram = (double)gnum(i, "dram_active", gnum(i, "mem_util", 0));
    s->tensor = (double)gnum(i, "tensor_active", 0);
    pthread_mutex_lock(&lock);
    s->seq = ++gpm_seq;
    pthread_mutex_unlock(&lock);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *m) {
    if (!initialized) return NVML_ERROR_UNINITIALIZED;
    if (!m) return NVML_ERROR_INVALID_ARGUMENT;
    if (m->version != 1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (m->numMetrics > GPM_MAX_QUERY) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlGpmSample_t a = m->sample1, b = m->sample2;
    if (!a || !b || a->device < 0 || b->device < 0) return NVML_ERROR_INVALID_ARGUMENT;
    if (a->device != b->device || a->seq >= b->seq) return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned int k = 0; k < m->numMetrics; k++) {
        nvmlGpmMetric_t *x = &m->metrics[k];
        x->nvmlReturn = NVML_SUCCESS;
        x->metricInfo.shortName = x->metricInfo.longName = x->metricInfo.unit = NULL;
        switch (x->metricId) {
        case GPM_GRAPHICS_UTIL: x->value = b->gr; break;
        case GPM_SM_UTIL: x->value = b->sm; break;
        case GPM_SM_OCCUPANCY: x->value = b->occ; break;
        case GPM_DRAM_BW_UTIL: x->value = b->dram; break;
        case GPM_ANY_TENSOR_UTIL: x->value = b->tensor; break;
        default: x->value = 0; x->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        }
    }
    return NVML_SUCCESS;
}
