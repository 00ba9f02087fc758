#pragma once
// Dense host matrices. Row-major everywhere: a weight W (m x n) has its output
// rows contiguous, as in safetensors; activations X are (tokens x features).
#include <Eigen/Dense>

namespace amlq {

using MatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using VectorF = Eigen::VectorXf;
using VectorD = Eigen::VectorXd;

}  // namespace amlq
