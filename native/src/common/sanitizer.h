/* sanitizer: SLUICE_UNDER_ADDRESS_SANITIZER is defined in an AddressSanitizer build (make asan,
 * the tests' second build), which cannot run under a seccomp filter: ASan switches signal stacks
 * in every thread and LeakSanitizer stops the world with ptrace at exit. */
#ifndef SLUICE_COMMON_SANITIZER_H
#define SLUICE_COMMON_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__)
#define SLUICE_UNDER_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLUICE_UNDER_ADDRESS_SANITIZER 1
#endif
#endif

#endif
