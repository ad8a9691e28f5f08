/* error.h — the one table of promptcache error codes.
 * Functions return 0 or a negative PC_E* code; pc_strerror() names it. */
#ifndef PC_ERROR_H
#define PC_ERROR_H

#define PC_ERRNO_MAP(X)                                                                                                \
  X(NOMEM, -1, "out of memory")                                                                                        \
  X(TOOBIG, -2, "value exceeds its size limit")                                                                        \
  X(INVAL, -3, "invalid argument")                                                                                     \
  X(JSON, -4, "invalid JSON")                                                                                          \
  X(DUPKEY, -5, "duplicate key in JSON object")                                                                        \
  X(DEPTH, -6, "JSON nested too deeply")                                                                               \
  X(UTF8, -7, "invalid UTF-8")                                                                                         \
  X(NOTFOUND, -8, "not found")                                                                                         \
  X(IO, -9, "I/O error")                                                                                               \
  X(CORRUPT, -10, "corrupt data")                                                                                      \
  X(MAPFULL, -11, "cache is full")                                                                                     \
  X(UPCONNECT, -12, "upstream unreachable")                                                                            \
  X(UPTIMEOUT, -13, "upstream timed out")                                                                              \
  X(UPPROTO, -14, "upstream sent an invalid response")                                                                 \
  X(CANCELED, -15, "canceled")                                                                                         \
  X(VERSION, -16, "unsupported format version")                                                                        \
  X(EXISTS, -17, "already exists")                                                                                     \
  X(TIMEDOUT, -18, "timed out")                                                                                        \
  X(UNAVAIL, -19, "service unavailable")                                                                               \
  X(PROTO, -20, "protocol error")                                                                                      \
  X(BUSY, -21, "over capacity")                                                                                        \
  X(READONLY, -22, "read-only")                                                                                        \
  X(NOSPACE, -23, "no space left for the database file")

enum pc_error {
  PC_OK = 0,
#define PC_ERR_ENUM(name, code, msg) PC_E##name = (code),
  PC_ERRNO_MAP(PC_ERR_ENUM)
#undef PC_ERR_ENUM
};

/* Static message for a code (never NULL). */
const char *pc_strerror(int code);
/* Static symbolic name, e.g. "PC_EJSON". */
const char *pc_errname(int code);

#endif
