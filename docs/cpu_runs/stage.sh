# Sourced by the CPU run scripts (after they set B, the venv's bin directory): stage OUT ARGS... runs
# `camseg-train ARGS --out OUT` unless OUT holds DONE, resumes it when OUT holds a train_state.json, prints its wall
# time and marks OUT done.
stage() {  # out dir, then the camseg-train arguments
  out=$1; shift
  [ -f $out/DONE ] && return 0
  extra=""; [ -f $out/train_state.json ] && extra="--resume"
  /usr/bin/time -f "%e s" $B/camseg-train "$@" --out $out $extra
  touch $out/DONE
}
