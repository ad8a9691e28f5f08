/* nearest.c — finds the recorded request closest to one that missed in
 * replay mode and lists the differences. Candidates share the route and
 * path; among them the score is the length of the common prefix plus the
 * common suffix of the key material (cheap, and a changed message in the
 * middle of a long conversation still scores high). Only the winner is
 * parsed and diffed. A few thousand entries take a few milliseconds. */
#include "nearest.h"

#include <stdlib.h>
#include <string.h>

#include "bodykey.h"
#include "entry.h"
#include "error.h"

struct search {
  const char *route, *path, *m;
  size_t mlen;
  size_t best_score;
  int found;
  uint8_t best_key[16];
  pc_buf best_material;
};

static size_t common_prefix(const char *a, size_t an, const char *b, size_t bn) {
  size_t n = an < bn ? an : bn, i = 0;
  while (i < n && a[i] == b[i]) i++;
  return i;
}

static size_t common_suffix(const char *a, size_t an, const char *b, size_t bn, size_t limit) {
  size_t i = 0;
  while (i < an && i < bn && i < limit && a[an - 1 - i] == b[bn - 1 - i]) i++;
  return i;
}

static int slice_is(const struct pc_slice *s, const char *v) { return s->n == strlen(v) && !memcmp(s->p, v, s->n); }

/* Whether key field `name` is the same in two key materials. */
static int same_field(const char *a, size_t an, const char *b, size_t bn, const char *name) {
  const char *pa = "", *pb = "";
  size_t na = 0, nb = 0;
  pc_key_material_field(a, an, name, &pa, &na);
  pc_key_material_field(b, bn, name, &pb, &nb);
  return na == nb && !memcmp(pa, pb, na);
}

static int visit(void *ud, const uint8_t key[16], const void *val, size_t len) {
  struct search *s = ud;
  struct pc_entry e;
  if (pc_entry_decode(val, len, 0, &e) || !slice_is(&e.route, s->route) || !slice_is(&e.path, s->path)) return 0;
  /* Only what the caller could have hit: another tenant's namespace or
   * credential is never shown (its prompt would leak through the diff). */
  if (!same_field(e.request.p, e.request.n, s->m, s->mlen, "method") ||
      !same_field(e.request.p, e.request.n, s->m, s->mlen, "namespace") ||
      !same_field(e.request.p, e.request.n, s->m, s->mlen, "credential"))
    return 0;
  /* a later answer of a recorded sequence stands for the same request as its first */
  if (pc_key_material_seq_of(e.request.p, e.request.n)) return 0;
  size_t pre = common_prefix(e.request.p, e.request.n, s->m, s->mlen);
  size_t shorter = e.request.n < s->mlen ? e.request.n : s->mlen;
  size_t score = pre + common_suffix(e.request.p, e.request.n, s->m, s->mlen, shorter - pre);
  if (s->found && score <= s->best_score) return 0;
  s->found = 1;
  s->best_score = score;
  memcpy(s->best_key, key, 16);
  pc_buf_reset(&s->best_material);
  return pc_buf_append(&s->best_material, e.request.p, e.request.n);
}

static char *json_text_of(const char *p, size_t n) {
  pc_buf b;
  pc_buf_init(&b, n * 6 + 16);
  if (pc_json_write_string(&b, p, n)) {
    pc_buf_free(&b);
    return NULL;
  }
  return pc_buf_steal(&b, NULL);
}

static int add_diff(struct pc_nearest *out, const char *name, const char *pa, size_t na, const char *pb, size_t nb) {
  out->total++;
  if (out->n >= PC_NEAREST_MAX_DIFFS) return 0;
  struct pc_json_diff *d = realloc(out->diffs, (out->n + 1) * sizeof *d);
  if (!d) return PC_ENOMEM;
  out->diffs = d;
  d = &out->diffs[out->n++];
  size_t pl = strlen(name) + 2;
  d->pointer = malloc(pl);
  if (d->pointer) {
    d->pointer[0] = '@';
    memcpy(d->pointer + 1, name, pl - 1);
  }
  d->recorded = json_text_of(pa, na);
  d->requested = json_text_of(pb, nb);
  return 0;
}

/* Non-body key fields that differ, as "@field" pseudo-pointers; a path that
 * differs only in its query as "@query/<name>" per parameter. */
static int field_diffs(const char *a, size_t an, const char *b, size_t bn, struct pc_nearest *out) {
  static const char *const fields[] = {"method", "namespace", "credential"};
  int rc = 0;
  const char *pa = "", *pb = "";
  size_t na = 0, nb = 0;
  pc_key_material_field(a, an, "path", &pa, &na);
  pc_key_material_field(b, bn, "path", &pb, &nb);
  const char *qa = memchr(pa, '?', na), *qb = memchr(pb, '?', nb);
  size_t la = qa ? (size_t)(qa - pa) : na, lb = qb ? (size_t)(qb - pb) : nb;
  if (la == lb && !memcmp(pa, pb, la)) {
    if (na != nb || memcmp(pa, pb, na))
      rc = pc_bodykey_query_diff(qa ? qa + 1 : "", qa ? na - la - 1 : 0, qb ? qb + 1 : "", qb ? nb - lb - 1 : 0,
                                 PC_NEAREST_MAX_DIFFS, PC_NEAREST_ABBREV, &out->diffs, &out->n, &out->total);
  } else {
    rc = add_diff(out, "path", pa, na, pb, nb);
  }
  for (size_t i = 0; i < sizeof fields / sizeof *fields && !rc; i++) {
    pa = pb = "";
    na = nb = 0;
    pc_key_material_field(a, an, fields[i], &pa, &na);
    pc_key_material_field(b, bn, fields[i], &pb, &nb);
    if (na != nb || memcmp(pa, pb, na)) rc = add_diff(out, fields[i], pa, na, pb, nb);
  }
  for (int i = 0; i < PC_KEY_N_ALL && !rc; i++) {
    pa = pb = "";
    na = nb = 0;
    pc_key_material_field(a, an, pc_key_headers[i], &pa, &na);
    pc_key_material_field(b, bn, pc_key_headers[i], &pb, &nb);
    if (na != nb || memcmp(pa, pb, na)) rc = add_diff(out, pc_key_headers[i], pa, na, pb, nb);
  }
  return rc;
}

/* JSON bodies: JSON pointers; any other (bodykey.h): @part/..., @field/...,
 * @body, @content-type. */
static int body_diffs(const char *a, size_t an, const char *b, size_t bn, struct pc_nearest *out) {
  const char *pa, *pb;
  size_t na, nb;
  struct pc_json_doc *da = NULL, *db = NULL;
  int rc = pc_key_material_field(a, an, "body", &pa, &na);
  if (!rc) rc = pc_key_material_field(b, bn, "body", &pb, &nb);
  if (!rc && (pc_bodykey_is_canon(pa, na) || pc_bodykey_is_canon(pb, nb)))
    return pc_bodykey_diff(pa, na, pb, nb, PC_NEAREST_MAX_DIFFS, PC_NEAREST_ABBREV, &out->diffs, &out->n, &out->total);
  if (!rc) rc = pc_json_parse(pa, na, &da, NULL);
  if (!rc) rc = pc_json_parse(pb, nb, &db, NULL);
  if (!rc)
    rc = pc_json_diff(pc_json_root(da), pc_json_root(db), PC_NEAREST_MAX_DIFFS, PC_NEAREST_ABBREV, &out->diffs, &out->n,
                      &out->total);
  pc_json_free(da);
  pc_json_free(db);
  return rc;
}

int pc_nearest_find(pc_cache *c, const char *route, const char *path, const char *material, size_t mlen,
                    struct pc_nearest *out) {
  struct search s = {.route = route, .path = path, .m = material, .mlen = mlen};
  memset(out, 0, sizeof *out);
  pc_buf_init(&s.best_material, (size_t)1 << 32);
  int rc = pc_cache_iterate(c, visit, &s);
  if (!rc && s.found) {
    out->found = 1;
    memcpy(out->key.b, s.best_key, 16);
    rc = body_diffs(s.best_material.data, s.best_material.len, material, mlen, out);
    if (!rc) rc = field_diffs(s.best_material.data, s.best_material.len, material, mlen, out);
  }
  pc_buf_free(&s.best_material);
  return rc;
}

void pc_nearest_free(struct pc_nearest *n) {
  pc_json_diff_free(n->diffs, n->n);
  memset(n, 0, sizeof *n);
}

int pc_nearest_json(const struct pc_nearest *n, pc_buf *out) {
  if (!n->found) return pc_buf_puts(out, "null");
  char hex[PC_KEY_HEX_LEN + 1];
  pc_key_hex(&n->key, hex);
  int rc = pc_buf_printf(out, "{\"key\":\"%s\",\"differences\":[", hex);
  for (size_t i = 0; i < n->n && !rc; i++) {
    const struct pc_json_diff *d = &n->diffs[i];
    rc = pc_buf_puts(out, i ? ",{\"path\":" : "{\"path\":");
    if (!rc) rc = pc_json_write_string(out, d->pointer ? d->pointer : "", d->pointer ? strlen(d->pointer) : 0);
    if (!rc && d->recorded) rc = pc_buf_printf(out, ",\"recorded\":%s", d->recorded);
    if (!rc && d->requested) rc = pc_buf_printf(out, ",\"requested\":%s", d->requested);
    if (!rc) rc = pc_buf_putc(out, '}');
  }
  if (!rc) rc = pc_buf_printf(out, "],\"total_differences\":%zu}", n->total);
  return rc;
}

int pc_nearest_text(const struct pc_nearest *n, pc_buf *out) {
  if (!n->found) return pc_buf_puts(out, "no recorded request on this route and path");
  char hex[PC_KEY_HEX_LEN + 1];
  pc_key_hex(&n->key, hex);
  int rc = pc_buf_printf(out, "nearest %s differs at", hex);
  for (size_t i = 0; i < n->n && !rc; i++) {
    const struct pc_json_diff *d = &n->diffs[i];
    rc = pc_buf_printf(out, "%s %s (recorded %s, requested %s)", i ? ";" : "", d->pointer ? d->pointer : "",
                       d->recorded ? d->recorded : "absent", d->requested ? d->requested : "absent");
  }
  if (!rc && n->total > n->n) rc = pc_buf_printf(out, "; and %zu more", n->total - n->n);
  if (!rc && n->total == 0) rc = pc_buf_puts(out, " nothing in the key (the entry may have expired)");
  return rc;
}
