#!/bin/bash
# normalized disassembly of the fast-entry symbols of $1
lib=$1
for f in gilgate_restore_thread gilgate_acquire_thread gilgate_gilstate_ensure gilgate_save_thread gilgate_release_thread gilgate_gilstate_release PyEval_RestoreThread PyEval_AcquireThread PyGILState_Ensure PyEval_SaveThread PyEval_ReleaseThread PyGILState_Release gg_api_restore_thread gg_api_acquire_thread gg_api_gilstate_ensure gg_api_save_thread gg_api_release_thread gg_api_gilstate_release gg_drop_restore_thread gg_drop_acquire_thread gg_drop_gilstate_ensure gg_drop_save_thread gg_drop_release_thread gg_drop_gilstate_release gg_arm_call gg_jb_jump gg_kill_hook gg_walk_resume; do
  echo "== $f"
  gdb -batch -ex "disassemble $f" "$lib" 2>/dev/null | grep '^ ' | sed -E 's/^ *0x[0-9a-f]+ <\+([0-9]+)>:\t/+\1 /; s/0x[0-9a-f]+//g; s/<[^>]*>//g; s/#.*//'
done
