/* zstdspec: the one parser of "zstd" / "zstd:LEVEL" (--compress of sluice-capture and
 * sluice-pcap). */
#ifndef SLUICE_ZSTDSPEC_H
#define SLUICE_ZSTDSPEC_H

#define ZSTD_LEVEL_MIN 1
#define ZSTD_LEVEL_MAX 19
#define ZSTD_LEVEL_DEFAULT 3

/* 0 with *level (3 for plain "zstd", else LEVEL); -1 when arg is not zstd or zstd:...;
 * -2 when LEVEL is not a whole number from 1 to 19. */
int zstd_spec_parse(const char *arg, int *level);

#endif
