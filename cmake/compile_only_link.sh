#!/bin/sh
# The link "launcher" of a compile-only CUDA build (cmake/Cuda.cmake): instead of running the
# link command it is given, writes a stub at the command's -o output that explains why the
# target was not linked and exits 1 when run. Commands without -o (static libraries: ar, rm)
# run as they are.
note=$1
shift
out=
prev=
for arg in "$@"; do
  [ "$prev" = "-o" ] && out=$arg
  prev=$arg
done
[ -n "$out" ] || exec "$@"
name=$(basename "$out")
cat >"$out" <<STUB
#!/bin/sh
echo "$name: not linked: this is a compile-only build with BITSWEEP_WITH_CUDA=ON ($note); configure against a CUDA libtorch to link it" >&2
exit 1
STUB
chmod +x "$out"
echo "compile-only: $name not linked ($note)"
