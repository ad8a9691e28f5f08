# fuzz.mk — libFuzzer targets (included by the top-level Makefile, run from the repository root).
#   make fuzz         build every target into $(BUILD)/fuzz/<name> (clang, ASan + UBSan)
#   make fuzz-smoke   run each for FUZZ_SECONDS on a copy of its seed corpus; non-zero on any crash
#   make fuzz-seeds   regenerate the generated seeds (corpus/entry/gen-*, corpus/import/gen-*)
# See tests/fuzz/README.md.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 20
FUZZ_OBJ := $(BUILD)/fuzz-obj
FUZZ_BIN := $(BUILD)/fuzz
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1
FUZZ_LINK_SAN := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

# One target per parser of outside bytes; tests/fuzz/fuzz_<name>.c each.
FUZZ_TARGETS := canon json entry import usage sse accesslog config http bodykey eventstream

# The library: every src/*.c but main.c, llhttp and the embedded assets, in an
# archive so each target links only the objects it needs.
FUZZ_LIB_OBJS := $(LIB_SRCS:src/%.c=$(FUZZ_OBJ)/%.o) $(LLHTTP:%=$(FUZZ_OBJ)/llhttp_%.o) $(FUZZ_OBJ)/assets.o
FUZZ_LIB := $(FUZZ_OBJ)/libpromptcache.a
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BIN)/%)
# Kept between builds (make would delete them as intermediates of the chain).
.SECONDARY: $(FUZZ_TARGETS:%=$(FUZZ_OBJ)/t/fuzz_%.o) $(FUZZ_OBJ)/t/gen_seeds.o

.PHONY: fuzz-seeds

fuzz: $(FUZZ_BINS)

fuzz-smoke: fuzz
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BIN=$(FUZZ_BIN) tests/fuzz/smoke.sh $(FUZZ_TARGETS)

$(FUZZ_OBJ)/%.o: src/%.c | $(BUILD)/.deps-test
	@mkdir -p $(FUZZ_OBJ)
	$(FUZZ_CC) $(PC_CPPFLAGS) $(CPPFLAGS) $(PC_CFLAGS) $(FUZZ_SAN) $(DEPFLAGS) -c $< -o $@

$(FUZZ_OBJ)/llhttp_%.o: | $(BUILD)/.deps-test
	@mkdir -p $(FUZZ_OBJ)
	$(FUZZ_CC) -I$(LLHTTP_INC) $(FUZZ_SAN) -w -c $(LLHTTP_SRC)/$*.c -o $@

$(FUZZ_OBJ)/t/%.o: tests/fuzz/%.c | $(BUILD)/.deps-test
	@mkdir -p $(FUZZ_OBJ)/t
	$(FUZZ_CC) $(PC_CPPFLAGS) $(CPPFLAGS) -Itests/fuzz $(PC_CFLAGS) $(FUZZ_SAN) $(DEPFLAGS) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $(FUZZ_LIB_OBJS)

$(FUZZ_BIN)/%: $(FUZZ_OBJ)/t/fuzz_%.o $(FUZZ_LIB)
	@mkdir -p $(FUZZ_BIN)
	$(FUZZ_CC) $(FUZZ_LINK_SAN) $(LDFLAGS) -o $@ $< $(FUZZ_LIB) $(LDLIBS) $(PC_LIBS) -lxxhash

# The seed generator (an ordinary program on the same sanitized library).
$(FUZZ_BIN)/gen_seeds: $(FUZZ_OBJ)/t/gen_seeds.o $(FUZZ_LIB)
	@mkdir -p $(FUZZ_BIN)
	$(FUZZ_CC) -fsanitize=address,undefined $(LDFLAGS) -o $@ $< $(FUZZ_LIB) $(LDLIBS) $(PC_LIBS)

fuzz-seeds: $(FUZZ_BIN)/gen_seeds
	$(FUZZ_BIN)/gen_seeds tests/fuzz/corpus

-include $(wildcard $(FUZZ_OBJ)/*.d $(FUZZ_OBJ)/t/*.d)
