# Runs `npm ci --ignore-scripts` for dashboard/package-lock.json in DIR (under the build tree, so
# the source tree stays clean). Fails the build with a clear message when npm cannot fetch.
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
    "dashboard: `npm ci --ignore-scripts` in ${DIR} failed (exit ${rc}). The dashboard's chart "
    "library (uPlot, pinned in dashboard/package-lock.json) comes from the npm registry at build "
    "time: check that the registry (or a populated npm cache) is reachable.\n${out}${err}")
endif()
# npm leaves the files' old modification times; touch them so the build sees them as new.
file(TOUCH "${DIR}/node_modules/uplot/dist/uPlot.iife.min.js"
           "${DIR}/node_modules/uplot/dist/uPlot.min.css")
