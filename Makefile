# authd build. `make` builds build/authd; SANITIZE=address,undefined builds
# into build-asan/. See README.md for run and test.
.DEFAULT_GOAL := all

CC      ?= cc
PKGS    := libmicrohttpd jansson libsodium sqlite3 libpq hiredis libcurl openssl libcrypt
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) -Isrc -Ibuild/gen $(PKG_CFLAGS) -pthread -MMD -MP
LDLIBS  += $(PKG_LIBS) -pthread -lm

# The server binary allocates through jemalloc (docs/http.md, "Allocator"):
# MALLOC=libc builds it on glibc malloc instead. Sanitizer builds always use
# the sanitizer's allocator; unit tests use glibc's.
MALLOC  ?= jemalloc
ifneq ($(SANITIZE),)
BUILD   := build-asan
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all -O1
LDFLAGS += -fsanitize=$(SANITIZE)
else
BUILD   := build
ifeq ($(MALLOC),jemalloc)
SERVER_LIBS := -ljemalloc
endif
endif

SRC      := $(shell find src -name '*.c' | sort)
LIB_SRC  := $(filter-out src/main.c,$(SRC))
MIG      := $(sort $(wildcard migrations/sqlite/*.sql migrations/postgres/*.sql))
GEN_C    := $(BUILD)/gen/migrations_data.c
OBJ      := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/gen/migrations_data.o
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all run test unit lint bench clean deps
all: $(BUILD)/authd

deps:
	@scripts/install-deps

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -o $@ $<

$(GEN_C): $(MIG) $(BUILD)/tools/embed
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed $@ migrations_embedded $(MIG)

$(BUILD)/obj/gen/migrations_data.o: $(GEN_C)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Wmissing-prototypes,$(CFLAGS)) -c $< -o $@

$(BUILD)/libauthd.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^

# One stamp per allocator choice, so switching MALLOC relinks the server.
MALLOC_STAMP := $(BUILD)/obj/malloc-$(MALLOC)
$(MALLOC_STAMP):
	@mkdir -p $(dir $@)
	@rm -f $(BUILD)/obj/malloc-*
	@touch $@

$(BUILD)/authd: $(BUILD)/obj/src/main.o $(BUILD)/libauthd.a $(MALLOC_STAMP)
	$(CC) $(LDFLAGS) -o $@ $(filter-out $(MALLOC_STAMP),$^) $(SERVER_LIBS) $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libauthd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libauthd.a $(LDLIBS) $(shell pkg-config --libs cmocka)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

run:
	@scripts/install-deps
	@$(MAKE) --no-print-directory all
	@mkdir -p data
	APP__ENVIRONMENT=$${APP__ENVIRONMENT:-development} APP__HOST=$${APP__HOST:-127.0.0.1} ./build/authd serve

test:
	@scripts/test

lint:
	@scripts/lint

bench:
	@scripts/install-deps
	@$(MAKE) --no-print-directory all
	@bench/run

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
