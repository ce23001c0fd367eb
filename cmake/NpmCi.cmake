# Runs `npm ci --ignore-scripts` for SOURCE/package-lock.json in DIR (under the build tree, so the
# source tree stays clean), then touches TOUCH (a |-list of files under DIR) so the build sees
# them as new. Fails the build with a clear message when npm cannot fetch. Used as
#   cmake -DNPM=... -DSOURCE=... -DDIR=... -DTOUCH=a|b -P cmake/NpmCi.cmake
file(MAKE_DIRECTORY "${DIR}")
file(COPY_FILE "${SOURCE}/package.json" "${DIR}/package.json" ONLY_IF_DIFFERENT)
file(COPY_FILE "${SOURCE}/package-lock.json" "${DIR}/package-lock.json" ONLY_IF_DIFFERENT)
execute_process(
  COMMAND "${NPM}" ci --ignore-scripts --no-audit --no-fund --loglevel=error
  WORKING_DIRECTORY "${DIR}"
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR
    "`npm ci --ignore-scripts` for ${SOURCE}/package-lock.json failed (exit ${rc}). These "
    "packages come from the npm registry at build time: check that the registry (or a populated "
    "npm cache) is reachable.\n${out}${err}")
endif()
string(REPLACE "|" ";" touch "${TOUCH}")
foreach(f IN LISTS touch)
  file(TOUCH "${DIR}/${f}")
endforeach()
