// Reading fingerprints saved by MATLAB (.mat through libmatio): the Binghamton
// camera-fingerprint toolbox and several public PRNU data sets store K as a 2-D double array.
// Every fingerprint path of the tool goes through ReadFingerprintArray, which picks the reader
// from the extension. Built without libmatio, a .mat gives an error saying so.
#pragma once

#include <string>
#include <vector>

#include "dippas/io/npy.h"

namespace dippas {

// True when this build can read .mat files.
bool MatSupported();

// The names of the variables in a .mat file, in file order. IoError naming the file when it
// cannot be read as a MATLAB file.
std::vector<std::string> MatVariableNames(const std::string& path);

// Reads the real 2-D numeric (double or single) array `variable` of a .mat file as float32,
// row-major (MATLAB stores columns first: A(i,j) lands at data[i·cols + j]). With `variable`
// empty the file must hold exactly one variable. IoError naming the file (and the variables
// when the choice is missing or wrong) for anything else: corrupt, 3-D, complex, sparse, text.
Array2D ReadMat(const std::string& path, const std::string& variable = "");

// The variable read from .mat fingerprints (the CLI's --mat-var): process-wide, since every
// fingerprint a command reads comes from the same toolbox; empty = the file's only variable.
void SetMatVariable(const std::string& name);
const std::string& MatVariable();

// A fingerprint file: .mat (case-insensitive extension) through ReadMat with MatVariable(),
// anything else as .npy.
Array2D ReadFingerprintArray(const std::string& path);

// The fingerprint of `device` in a folder of fingerprints: <dir>/<device>.npy, or
// <dir>/<device>.mat when only that exists (the .npy path when neither does, for the error).
std::string DeviceFingerprintPath(const std::string& dir, const std::string& device);

}  // namespace dippas
