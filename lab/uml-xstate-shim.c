/*
 * LD_PRELOAD shim for Debian 12's UML (6.1) on hosts with a large XSAVE area.
 *
 * UML 6.1 saves and restores its processes' FPU state with
 * PTRACE_{GET,SET}REGSET(NT_X86_XSTATE) and an 832-byte buffer (x87/SSE/AVX).
 * The host kernel only accepts SETREGSET with a buffer of exactly its full
 * XSAVE size (2688 with AVX-512, 11008 with AMX), so UML panics at the first
 * process ("ptrace set fp regs failed, errno = 14").
 *
 * Here SETREGSET with a short buffer becomes: read the target's full state,
 * overlay UML's part, keep the target's own state for the components UML does
 * not know about, write the full buffer. GETREGSET with a short buffer already
 * works (the kernel truncates). The guest also masks AVX-512 in glibc/OpenSSL
 * (see guest/init2) since UML cannot switch those registers between threads.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#define XSAVE_HDR_OFF 512           /* XSTATE_BV lives at the start of the header */
#define XSAVE_HDR_END 576
#define BUF_SIZE (64 * 1024)

static long (*real_ptrace)(int, pid_t, void *, void *);
static size_t full_size;            /* host XSAVE size, learned on first use */
static unsigned char buf[BUF_SIZE] __attribute__((aligned(64)));
static int buf_busy;

__attribute__((constructor)) static void shim_init(void)
{
    real_ptrace = (long (*)(int, pid_t, void *, void *))dlsym(RTLD_NEXT, "ptrace");
}

/* XSTATE_BV bits of the components that lie completely inside the first n
 * bytes. Cached: CPUID traps to the hypervisor and is slow in a VM. */
static uint64_t components_within(size_t n)
{
    static size_t cached_n;
    static uint64_t cached_mask;
    uint64_t mask = 3;              /* x87 and SSE: legacy area */
    unsigned int size, off, ecx, edx;

    if (n == cached_n)
        return cached_mask;
    for (int i = 2; i < 63; i++) {
        if (!__get_cpuid_count(0xd, i, &size, &off, &ecx, &edx) || size == 0)
            continue;
        if (!(ecx & 1) && (size_t)off + size <= n)   /* ecx bit 0: supervisor state */
            mask |= 1ULL << i;
    }
    cached_mask = mask;
    cached_n = n;
    return mask;
}

static long set_xstate(pid_t pid, struct iovec *iov)
{
    unsigned char *b = buf;
    struct iovec full;
    uint64_t mine, theirs, keep;
    long r;

    if (full_size && iov->iov_len >= full_size)
        return real_ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, iov);
    if (iov->iov_len < XSAVE_HDR_END)
        return real_ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, iov);
    if (__atomic_exchange_n(&buf_busy, 1, __ATOMIC_ACQUIRE)) {   /* re-entered: private buffer */
        b = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (b == MAP_FAILED)
            return real_ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, iov);
    }
    full.iov_base = b;
    full.iov_len = BUF_SIZE;
    r = real_ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &full);
    if (r == 0) {
        full_size = full.iov_len;
        if (iov->iov_len >= full_size) {
            r = real_ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, iov);
        } else {
            keep = components_within(iov->iov_len);
            memcpy(&theirs, b + XSAVE_HDR_OFF, 8);
            memcpy(b, iov->iov_base, iov->iov_len);
            memcpy(&mine, b + XSAVE_HDR_OFF, 8);
            mine = (mine & keep) | (theirs & ~keep);
            memcpy(b + XSAVE_HDR_OFF, &mine, 8);
            r = real_ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE, &full);
        }
    }
    if (b == buf)
        __atomic_store_n(&buf_busy, 0, __ATOMIC_RELEASE);
    else
        munmap(b, BUF_SIZE);
    return r;
}

long ptrace(enum __ptrace_request request, ...)
{
    va_list ap;
    pid_t pid;
    void *addr, *data;

    va_start(ap, request);
    pid = va_arg(ap, pid_t);
    addr = va_arg(ap, void *);
    data = va_arg(ap, void *);
    va_end(ap);
    if (request == PTRACE_SETREGSET && (uintptr_t)addr == NT_X86_XSTATE && data)
        return set_xstate(pid, data);
    return real_ptrace(request, pid, addr, data);
}
