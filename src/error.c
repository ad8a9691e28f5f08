/* error.c — maps PC_E* codes to names and messages (the single table lives in error.h). */
#include "error.h"

const char *pc_strerror(int code) {
  switch (code) {
  case 0:
    return "success";
#define PC_ERR_MSG(name, c, msg)                                                                                       \
  case c:                                                                                                              \
    return msg;
    PC_ERRNO_MAP(PC_ERR_MSG)
#undef PC_ERR_MSG
  default:
    return "unknown error";
  }
}

const char *pc_errname(int code) {
  switch (code) {
  case 0:
    return "PC_OK";
#define PC_ERR_NAME(name, c, msg)                                                                                      \
  case c:                                                                                                              \
    return "PC_E" #name;
    PC_ERRNO_MAP(PC_ERR_NAME)
#undef PC_ERR_NAME
  default:
    return "PC_EUNKNOWN";
  }
}
