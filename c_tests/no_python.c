/* A process with no CPython at all: every call answers GILGATE_ERR_NO_PYTHON (or its documented
 * no-op), nothing crashes. Linked against gilgate only. */
#include "gilgate.h"
#include <stdio.h>
#include <string.h>

static int failures, checks;
#define EXPECT(call, want) do { int got_ = (call); checks++; if (got_ != (want)) { failures++; \
    fprintf(stderr, "FAILED %s:%d: %s = %d, want %d\n", __FILE__, __LINE__, #call, got_, (int)(want)); } } while (0)

int main(void) {
    int st = 0;
    EXPECT(gilgate_runtime_status(), GILGATE_ERR_NO_PYTHON);
    EXPECT(gilgate_gilstate_ensure(&st), GILGATE_ERR_NO_PYTHON);
    EXPECT(gilgate_gilstate_ensure(NULL), GILGATE_ERR_NULL_ARGUMENT);
    EXPECT(gilgate_restore_thread((struct _ts *)&st), GILGATE_ERR_NO_PYTHON);
    EXPECT(gilgate_acquire_thread((struct _ts *)&st), GILGATE_ERR_NO_PYTHON);
    EXPECT(gilgate_restore_thread(NULL), GILGATE_ERR_NULL_ARGUMENT);
    EXPECT(gilgate_finalize(&st), GILGATE_ERR_NO_PYTHON);
    EXPECT(gilgate_save_thread() == NULL, 1);
    gilgate_release_thread((struct _ts *)&st);
    gilgate_gilstate_release(0);
    struct gilgate_stats s;
    EXPECT(gilgate_stats(&s), GILGATE_OK);
    EXPECT(s.refused_no_python >= 4, 1);
    EXPECT(s.gated_entries, 0);
    EXPECT(strncmp(gilgate_status_str(GILGATE_ERR_NO_PYTHON), "GILGATE_ERR_NO_PYTHON", 21), 0);
    printf("RESULT checks=%d failures=%d vanished=0 \n", checks, failures);
    return failures ? 1 : 0;
}
