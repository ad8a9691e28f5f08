/* prices.c — loads the --prices JSON table and prices token counts. */
#include "prices.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "json.h"

static int read_file(const char *path, pc_buf *out) {
  FILE *f = fopen(path, "rb");
  if (!f) return PC_EIO;
  char tmp[65536];
  size_t n;
  int rc = 0;
  while (!rc && (n = fread(tmp, 1, sizeof tmp, f)) > 0) rc = pc_buf_append(out, tmp, n);
  fclose(f);
  return rc;
}

static int load_model(const struct pc_json *m, struct pc_price *pr) {
  const char *match = pc_json_get_str(m, "match", NULL);
  const struct pc_json *in = pc_json_get(m, "input"), *out = pc_json_get(m, "output");
  if (!match || !in || in->type != PC_JSON_NUMBER || !out || out->type != PC_JSON_NUMBER) return PC_EINVAL;
  pr->match = strdup(match);
  if (!pr->match) return PC_ENOMEM;
  pr->input = in->num;
  pr->output = out->num;
  pr->cached_input = pc_json_get_num(m, "cached_input", -1);
  return (pr->input < 0 || pr->output < 0) ? PC_EINVAL : 0;
}

int pc_prices_load(const char *path, struct pc_prices *p, char *err, size_t errlen) {
  pc_buf text;
  struct pc_json_doc *doc = NULL;
  memset(p, 0, sizeof *p);
  pc_buf_init(&text, 16 << 20);
  int rc = read_file(path, &text);
  if (rc) {
    snprintf(err, errlen, "cannot read --prices file '%s'", path);
    goto out;
  }
  size_t pos = 0;
  rc = pc_json_parse(text.data ? text.data : "", text.len, &doc, &pos);
  if (rc) {
    snprintf(err, errlen, "--prices file '%s' is not valid JSON (byte %zu)", path, pos);
    goto out;
  }
  const struct pc_json *root = pc_json_root(doc), *models = pc_json_get(root, "models");
  if (!models || models->type != PC_JSON_ARRAY) {
    snprintf(err, errlen, "--prices file '%s' has no \"models\" array", path);
    rc = PC_EINVAL;
    goto out;
  }
  snprintf(p->currency, sizeof p->currency, "%s", pc_json_get_str(root, "currency", "USD"));
  snprintf(p->as_of, sizeof p->as_of, "%s", pc_json_get_str(root, "as_of", ""));
  p->v = calloc(models->len ? models->len : 1, sizeof *p->v);
  if (!p->v) {
    rc = PC_ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < models->len && !rc; i++, p->n++) rc = load_model(&models->kids[i], &p->v[i]);
  if (rc)
    snprintf(err, errlen, "--prices file '%s': models[%zu] needs \"match\", \"input\" and \"output\"", path, p->n - 1);
out:
  if (rc) pc_prices_free(p);
  pc_json_free(doc);
  pc_buf_free(&text);
  return rc;
}

void pc_prices_free(struct pc_prices *p) {
  for (size_t i = 0; p->v && i < p->n; i++) free(p->v[i].match);
  free(p->v);
  p->v = NULL;
  p->n = 0;
}

const struct pc_price *pc_prices_find(const struct pc_prices *p, const char *model) {
  for (size_t i = 0; p && i < p->n; i++)
    if (fnmatch(p->v[i].match, model, 0) == 0) return &p->v[i];
  return NULL;
}

double pc_prices_cost(const struct pc_price *pr, unsigned long long in, unsigned long long cached_in,
                      unsigned long long out) {
  if (!pr) return 0;
  if (cached_in > in) cached_in = in;
  double cached_price = pr->cached_input >= 0 ? pr->cached_input : pr->input;
  return ((double)(in - cached_in) * pr->input + (double)cached_in * cached_price + (double)out * pr->output) / 1e6;
}
