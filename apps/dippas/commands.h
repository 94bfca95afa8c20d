// One entry point per subcommand (COLMAP style): parse options, call the library.
#pragma once

namespace dippas {

int RunResidual(int argc, char** argv);
int RunFingerprint(int argc, char** argv);
int RunDetect(int argc, char** argv);
int RunBench(int argc, char** argv);
int RunAssemble(int argc, char** argv);
int RunAnonymize(int argc, char** argv);
int RunBatch(int argc, char** argv);
int RunEvaluate(int argc, char** argv);

}  // namespace dippas
