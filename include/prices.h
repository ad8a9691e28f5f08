/* prices.h — the --prices table: per-million-token prices by model-name
 * glob, first match wins. Prices live in a user-supplied file, never in C. */
#ifndef PC_PRICES_H
#define PC_PRICES_H

#include <stddef.h>

struct pc_price {
  char *match;                        /* fnmatch glob on the model name */
  double input, output, cached_input; /* per million tokens; cached_input < 0: same as input */
};

struct pc_prices {
  char currency[16];
  char as_of[32];
  struct pc_price *v;
  size_t n;
};

/* Load a JSON price file:
 *   {"as_of":"2026-11-01","currency":"USD",
 *    "models":[{"match":"gpt-4o-mini*","input":0.15,"output":0.60,"cached_input":0.075}, ...]}
 * On error writes a one-line message into err. */
int pc_prices_load(const char *path, struct pc_prices *p, char *err, size_t errlen);
void pc_prices_free(struct pc_prices *p);
const struct pc_price *pc_prices_find(const struct pc_prices *p, const char *model);
/* Money for the given token counts (cached_in is part of in). */
double pc_prices_cost(const struct pc_price *pr, unsigned long long in, unsigned long long cached_in,
                      unsigned long long out);

#endif
