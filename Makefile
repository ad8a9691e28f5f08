# promptcache — one Makefile: all, run, test, asan, tsan, fuzz, bench, lint, format, install, clean.
# Users may add their own CPPFLAGS, CFLAGS, LDFLAGS and LDLIBS: the project's
# flags are kept apart (PC_*) and the user's come after them.
PREFIX ?= /usr/local
CC ?= cc
BUILD := build
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS ?= -O2 -g
PC_CPPFLAGS := -D_GNU_SOURCE -Iinclude -I$(LLHTTP_INC)
PC_CFLAGS := -std=c11 $(WARN)
PC_LIBS := -luv -lcurl -llmdb -lxxhash -lhiredis -lssl -lcrypto -lz -lpthread -lm
DEPFLAGS = -MMD -MP
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
TSAN := -fsanitize=thread -fno-omit-frame-pointer

SRCS := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
LLHTTP := llhttp api http
UNIT_SRCS := $(wildcard tests/unit/*.c)

OBJ := $(BUILD)/obj
AOBJ := $(BUILD)/asan-obj
TOBJ := $(BUILD)/tsan-obj
# assets/* are embedded by src/assets.S (.incbin).
ASSETS := $(wildcard assets/*)
objs = $(SRCS:src/%.c=$(1)/%.o) $(LLHTTP:%=$(1)/llhttp_%.o) $(1)/assets.o
lib_objs = $(LIB_SRCS:src/%.c=$(1)/%.o) $(LLHTTP:%=$(1)/llhttp_%.o) $(1)/assets.o
OBJS := $(call objs,$(OBJ))
LIB_OBJS := $(call lib_objs,$(OBJ))
AOBJS := $(call objs,$(AOBJ))
ALIB_OBJS := $(call lib_objs,$(AOBJ))
TOBJS := $(call objs,$(TOBJ))

# e2e ENV...: the Node suite with extra environment (the binary under test among it).
e2e_run = cd tests/e2e && $(1) node --test --test-concurrency=2 *.test.mjs

.PHONY: all run test unit e2e asan tsan bench lint format format-check install clean deps deps-test fuzz fuzz-smoke

all: $(BUILD)/promptcache

deps: $(BUILD)/.deps-build
deps-test: $(BUILD)/.deps-test

$(BUILD)/.deps-build: scripts/deps.sh
	@mkdir -p $(BUILD)
	@scripts/deps.sh build
	@touch $@

# After the build set: two apt-get runs at once (make -j) would fight over apt's lock.
$(BUILD)/.deps-test: scripts/deps.sh | $(BUILD)/.deps-build
	@mkdir -p $(BUILD)
	@scripts/deps.sh test
	@touch $@

# One rule per object directory and flavour; -MMD -MP writes header dependencies beside each object.
$(OBJ)/%.o: src/%.c | $(BUILD)/.deps-build
	@mkdir -p $(OBJ)
	$(CC) $(PC_CPPFLAGS) $(CPPFLAGS) $(PC_CFLAGS) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(AOBJ)/%.o: src/%.c | $(BUILD)/.deps-build
	@mkdir -p $(AOBJ)
	$(CC) $(PC_CPPFLAGS) $(CPPFLAGS) $(PC_CFLAGS) -O1 -g $(SAN) $(DEPFLAGS) -c $< -o $@

$(TOBJ)/%.o: src/%.c | $(BUILD)/.deps-build
	@mkdir -p $(TOBJ)
	$(CC) $(PC_CPPFLAGS) $(CPPFLAGS) $(PC_CFLAGS) -O1 -g $(TSAN) $(DEPFLAGS) -c $< -o $@

$(BUILD)/%/assets.o: src/assets.S $(ASSETS) | $(BUILD)/.deps-build
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $@

# llhttp's generated sources warn under -Wextra: compile them with their own flags.
$(OBJ)/llhttp_%.o: | $(BUILD)/.deps-build
	@mkdir -p $(OBJ)
	$(CC) -I$(LLHTTP_INC) -O2 -g -w -c $(LLHTTP_SRC)/$*.c -o $@

$(AOBJ)/llhttp_%.o: | $(BUILD)/.deps-build
	@mkdir -p $(AOBJ)
	$(CC) -I$(LLHTTP_INC) -O1 -g -w $(SAN) -c $(LLHTTP_SRC)/$*.c -o $@

$(TOBJ)/llhttp_%.o: | $(BUILD)/.deps-build
	@mkdir -p $(TOBJ)
	$(CC) -I$(LLHTTP_INC) -O1 -g -w $(TSAN) -c $(LLHTTP_SRC)/$*.c -o $@

$(BUILD)/promptcache: $(OBJS)
	$(CC) $(PC_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS) $(PC_LIBS)

$(BUILD)/asan/promptcache: $(AOBJS)
	@mkdir -p $(BUILD)/asan
	$(CC) $(SAN) $(LDFLAGS) -o $@ $(AOBJS) $(LDLIBS) $(PC_LIBS)

$(BUILD)/tsan/promptcache: $(TOBJS)
	@mkdir -p $(BUILD)/tsan
	$(CC) $(TSAN) $(LDFLAGS) -o $@ $(TOBJS) $(LDLIBS) $(PC_LIBS)

$(BUILD)/unit_tests: $(LIB_OBJS) $(UNIT_SRCS) $(wildcard tests/unit/*.h) | $(BUILD)/.deps-test
	$(CC) $(PC_CPPFLAGS) $(CPPFLAGS) -Itests/unit $(PC_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(UNIT_SRCS) $(LIB_OBJS) $(LDLIBS) $(PC_LIBS) -lcriterion

$(BUILD)/asan/unit_tests: $(ALIB_OBJS) $(UNIT_SRCS) $(wildcard tests/unit/*.h) | $(BUILD)/.deps-test
	@mkdir -p $(BUILD)/asan
	$(CC) $(PC_CPPFLAGS) $(CPPFLAGS) -Itests/unit $(PC_CFLAGS) -O1 -g $(SAN) $(LDFLAGS) -o $@ $(UNIT_SRCS) $(ALIB_OBJS) $(LDLIBS) $(PC_LIBS) -lcriterion

run: $(BUILD)/promptcache
	$(BUILD)/promptcache serve --listen 127.0.0.1:8080 --upstream https://api.openai.com --db ./promptcache.db

tests/e2e/node_modules/.package-lock.json: tests/e2e/package-lock.json | $(BUILD)/.deps-test
	cd tests/e2e && npm ci --no-audit --no-fund

unit: $(BUILD)/unit_tests
	$(BUILD)/unit_tests --jobs 2

e2e: $(BUILD)/promptcache tests/e2e/node_modules/.package-lock.json
	$(call e2e_run,PROMPTCACHE_BIN=$(CURDIR)/$(BUILD)/promptcache)

test: unit e2e

asan: $(BUILD)/asan/promptcache $(BUILD)/asan/unit_tests tests/e2e/node_modules/.package-lock.json
	ASAN_OPTIONS=detect_leaks=1 $(BUILD)/asan/unit_tests --jobs 2
	$(call e2e_run,ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 PROMPTCACHE_BIN=$(CURDIR)/$(BUILD)/asan/promptcache)

# ThreadSanitizer: the e2e suite against a TSan build, every proxy with --workers 4
# (PC_TEST_WORKERS is read by tests/e2e/lib/proxy.mjs).
tsan: $(BUILD)/tsan/promptcache tests/e2e/node_modules/.package-lock.json
	$(call e2e_run,TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 PC_TEST_WORKERS=4 PROMPTCACHE_BIN=$(CURDIR)/$(BUILD)/tsan/promptcache)

# Benchmarks print figures (build/bench/results.md) and never fail the build.
bench:
	@MAKE="$(MAKE)" bash bench/run.sh

lint:
	clang-tidy --quiet $(SRCS) -- $(PC_CPPFLAGS) -std=c11
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr $(PC_CPPFLAGS) src

format:
	clang-format -i $(SRCS) $(wildcard include/*.h)

format-check:
	clang-format --dry-run -Werror $(SRCS) $(wildcard include/*.h)

install: $(BUILD)/promptcache
	install -D -m 0755 $(BUILD)/promptcache $(DESTDIR)$(PREFIX)/bin/promptcache

clean:
	rm -rf $(BUILD)

# libFuzzer targets (make fuzz, make fuzz-smoke): their rules live beside them.
-include tests/fuzz/fuzz.mk

-include $(wildcard $(OBJ)/*.d $(AOBJ)/*.d $(TOBJ)/*.d)
