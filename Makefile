# promptcache — one Makefile: all, run, test, asan, bench, lint, install, clean.
PREFIX ?= /usr/local
CC ?= cc
BUILD := build
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS ?= -O2 -g
CPPFLAGS := -D_GNU_SOURCE -Iinclude -I$(LLHTTP_INC)
ALL_CFLAGS := -std=c11 $(WARN) $(CFLAGS)
LDLIBS := -luv -lcurl -llmdb -lxxhash -lssl -lcrypto -lpthread -lm
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRCS := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
LLHTTP := llhttp api http
UNIT_SRCS := $(wildcard tests/unit/*.c)

OBJ := $(BUILD)/obj
AOBJ := $(BUILD)/asan-obj
# assets/* are embedded by src/assets.S (.incbin).
ASSETS := $(wildcard assets/*)
OBJS := $(SRCS:src/%.c=$(OBJ)/%.o) $(LLHTTP:%=$(OBJ)/llhttp_%.o) $(OBJ)/assets.o
LIB_OBJS := $(LIB_SRCS:src/%.c=$(OBJ)/%.o) $(LLHTTP:%=$(OBJ)/llhttp_%.o) $(OBJ)/assets.o
AOBJS := $(SRCS:src/%.c=$(AOBJ)/%.o) $(LLHTTP:%=$(AOBJ)/llhttp_%.o) $(AOBJ)/assets.o
ALIB_OBJS := $(LIB_SRCS:src/%.c=$(AOBJ)/%.o) $(LLHTTP:%=$(AOBJ)/llhttp_%.o) $(AOBJ)/assets.o

.PHONY: all run test unit e2e asan bench lint install clean deps deps-test

all: $(BUILD)/promptcache

deps: $(BUILD)/.deps-build
deps-test: $(BUILD)/.deps-test

$(BUILD)/.deps-build: scripts/deps.sh
	@mkdir -p $(BUILD)
	@scripts/deps.sh build
	@touch $@

$(BUILD)/.deps-test: scripts/deps.sh
	@mkdir -p $(BUILD)
	@scripts/deps.sh test
	@touch $@

$(OBJ)/%.o: src/%.c $(wildcard include/*.h) | $(BUILD)/.deps-build
	@mkdir -p $(OBJ)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(OBJ)/assets.o: src/assets.S $(ASSETS) | $(BUILD)/.deps-build
	@mkdir -p $(OBJ)
	$(CC) -c $< -o $@

$(AOBJ)/assets.o: src/assets.S $(ASSETS) | $(BUILD)/.deps-build
	@mkdir -p $(AOBJ)
	$(CC) -c $< -o $@

# llhttp's generated sources warn under -Wextra: compile them with their own flags.
$(OBJ)/llhttp_%.o: | $(BUILD)/.deps-build
	@mkdir -p $(OBJ)
	$(CC) -I$(LLHTTP_INC) -O2 -g -w -c $(LLHTTP_SRC)/$*.c -o $@

$(AOBJ)/%.o: src/%.c $(wildcard include/*.h) | $(BUILD)/.deps-build
	@mkdir -p $(AOBJ)
	$(CC) $(CPPFLAGS) -std=c11 $(WARN) -O1 -g $(SAN) -c $< -o $@

$(AOBJ)/llhttp_%.o: | $(BUILD)/.deps-build
	@mkdir -p $(AOBJ)
	$(CC) -I$(LLHTTP_INC) -O1 -g -w $(SAN) -c $(LLHTTP_SRC)/$*.c -o $@

$(BUILD)/promptcache: $(OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $(OBJS) $(LDLIBS)

$(BUILD)/asan/promptcache: $(AOBJS)
	@mkdir -p $(BUILD)/asan
	$(CC) $(SAN) -o $@ $(AOBJS) $(LDLIBS)

$(BUILD)/unit_tests: $(LIB_OBJS) $(UNIT_SRCS) $(wildcard tests/unit/*.h) | $(BUILD)/.deps-test
	$(CC) $(CPPFLAGS) -Itests/unit $(ALL_CFLAGS) -o $@ $(UNIT_SRCS) $(LIB_OBJS) $(LDLIBS) -lcriterion

$(BUILD)/asan/unit_tests: $(ALIB_OBJS) $(UNIT_SRCS) | $(BUILD)/.deps-test
	@mkdir -p $(BUILD)/asan
	$(CC) $(CPPFLAGS) -Itests/unit -std=c11 $(WARN) -O1 -g $(SAN) -o $@ $(UNIT_SRCS) $(ALIB_OBJS) $(LDLIBS) -lcriterion

run: $(BUILD)/promptcache
	$(BUILD)/promptcache serve --listen 127.0.0.1:8080 --upstream https://api.openai.com --db ./promptcache.db

tests/e2e/node_modules/.package-lock.json: tests/e2e/package-lock.json | $(BUILD)/.deps-test
	cd tests/e2e && npm ci --no-audit --no-fund

unit: $(BUILD)/unit_tests
	$(BUILD)/unit_tests --jobs 2

e2e: $(BUILD)/promptcache tests/e2e/node_modules/.package-lock.json
	cd tests/e2e && PROMPTCACHE_BIN=$(CURDIR)/$(BUILD)/promptcache node --test --test-concurrency=2 *.test.mjs

test: unit e2e

asan: $(BUILD)/asan/promptcache $(BUILD)/asan/unit_tests tests/e2e/node_modules/.package-lock.json
	ASAN_OPTIONS=detect_leaks=1 $(BUILD)/asan/unit_tests --jobs 2
	cd tests/e2e && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 PROMPTCACHE_BIN=$(CURDIR)/$(BUILD)/asan/promptcache node --test --test-concurrency=2 *.test.mjs

# Benchmarks print figures (build/bench/results.md) and never fail the build.
bench:
	@MAKE="$(MAKE)" bash bench/run.sh

lint:
	clang-tidy --quiet $(SRCS) -- $(CPPFLAGS) -std=c11
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr $(CPPFLAGS) src

install: $(BUILD)/promptcache
	install -D -m 0755 $(BUILD)/promptcache $(DESTDIR)$(PREFIX)/bin/promptcache

clean:
	rm -rf $(BUILD)
