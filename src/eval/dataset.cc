#include "dippas/eval/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>
#include <stdexcept>

#include "dippas/eval/roc.h"
#include "dippas/io/atomic_file.h"
#include "dippas/io/csv.h"
#include "dippas/io/mat.h"
#include "dippas/io/paths.h"

namespace dippas {
namespace {

namespace fs = std::filesystem;

bool Hidden(const fs::path& p) { return !p.filename().empty() && p.filename().string()[0] == '.'; }

// Image files under `dir`, recursively (following folder links), sorted; hidden entries skipped.
std::vector<std::string> ImagesUnder(const fs::path& dir) {
  std::vector<std::string> out;
  auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink);
  for (; it != fs::recursive_directory_iterator(); ++it) {
    if (Hidden(it->path())) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && IsImageFile(it->path())) out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string MissingMessage(const std::string& original, const fs::path& dir,
                           const std::string& stem) {
  return "no anonymized version of " + original + ": looked for " +
         (dir / (stem + ".anon.<ext>")).string() + " and " + (dir / (stem + ".<ext>")).string() +
         " (--allow-missing skips such images)";
}

// One CSV line into fields (a line of Lines(): a quoted field cannot span lines here).
std::vector<std::string> SplitCsv(const std::string& line, const std::string& where) {
  std::vector<std::string> fields;
  if (!SplitCsvFields(line, fields)) throw std::runtime_error(where + ": unterminated quote");
  return fields;
}

// Lines of a text file without their line ends; blank lines kept as empty strings.
std::vector<std::string> Lines(const std::string& bytes) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < bytes.size()) {
    size_t end = bytes.find('\n', start);
    if (end == std::string::npos) end = bytes.size();
    std::string line = bytes.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

int ColumnIndex(const std::vector<std::string>& header, const std::string& name) {
  for (size_t i = 0; i < header.size(); ++i) {
    std::string h = header[i];
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
    if (h == name) return static_cast<int>(i);
  }
  return -1;
}

std::string Resolve(const fs::path& base, const std::string& p) {
  const fs::path path(p);
  return path.is_absolute() ? p : (base / path).lexically_normal().string();
}

bool ParseDouble(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

std::optional<double> Median(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void FillRoc(SetSummary& s, const RocSets& r, double max_fpr) {
  s.auc_ncc = RocAuc(r.pos_ncc, r.neg_ncc);
  s.auc_pce = RocAuc(r.pos_pce, r.neg_pce);
  s.tpr_ncc = TprAtFpr(r.pos_ncc, r.neg_ncc, max_fpr);
  s.tpr_pce = TprAtFpr(r.pos_pce, r.neg_pce, max_fpr);
  s.n_positives = static_cast<int64_t>(r.pos_ncc.size());
  s.n_negatives = static_cast<int64_t>(r.neg_ncc.size());
}

void FillPsnr(SetSummary& s, const std::vector<std::optional<double>>& psnrs) {
  std::vector<double> finite;
  for (const auto& p : psnrs) {
    if (!p) continue;
    if (std::isfinite(*p)) {
      finite.push_back(*p);
    } else if (*p > 0) {
      ++s.n_unchanged;
    }
  }
  s.n_images = static_cast<int64_t>(psnrs.size());
  if (!finite.empty()) {
    double sum = 0;
    for (double v : finite) sum += v;
    s.psnr_mean = sum / static_cast<double>(finite.size());
    s.psnr_median = Median(finite);
  }
  if (s.psnr_mean && s.auc_ncc) s.c_metric = TradeOffC(*s.psnr_mean, *s.auc_ncc);
}

cv::Mat To8Bit(const Image& image) {
  cv::Mat m(static_cast<int>(image.height), static_cast<int>(image.width),
            CV_8UC(static_cast<int>(image.channels)));
  for (size_t i = 0; i < image.data.size(); ++i) {
    m.data[i] = static_cast<uchar>(std::clamp(std::round(image.data[i]), 0.0f, 255.0f));
  }
  return m;
}

}  // namespace

std::string FindAnonymized(const std::string& dir, const std::string& stem) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "";
  std::vector<std::string> anon, plain;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file() || !IsImageFile(e.path())) continue;
    const std::string s = e.path().stem().string();
    if (s == stem + ".anon") anon.push_back(e.path().string());
    if (s == stem) plain.push_back(e.path().string());
  }
  for (auto* found : {&anon, &plain}) {
    std::sort(found->begin(), found->end());
    if (found->size() > 1) {
      throw std::runtime_error("ambiguous anonymized version of '" + stem + "': both " +
                               (*found)[0] + " and " + (*found)[1]);
    }
    if (found->size() == 1) return found->front();
  }
  return "";
}

Dataset ScanTrees(const std::string& originals, const std::string& fingerprints,
                  const std::string& anonymized, bool allow_missing) {
  std::error_code ec;
  if (!fs::is_directory(originals, ec))
    throw std::runtime_error(originals + ": originals folder not found");
  if (!fs::is_directory(fingerprints, ec))
    throw std::runtime_error(fingerprints + ": fingerprints folder not found");
  if (!anonymized.empty() && !fs::is_directory(anonymized, ec)) {
    throw std::runtime_error(anonymized + ": anonymized folder not found");
  }
  std::vector<fs::path> device_dirs;
  for (const auto& e : fs::directory_iterator(originals)) {
    if (e.is_directory() && !Hidden(e.path())) device_dirs.push_back(e.path());
  }
  std::sort(device_dirs.begin(), device_dirs.end());
  Dataset ds;
  for (const auto& dev_dir : device_dirs) {
    const std::string device = dev_dir.filename().string();
    const auto images = ImagesUnder(dev_dir);
    if (images.empty()) continue;
    const fs::path fp = DeviceFingerprintPath(fingerprints, device);
    if (!fs::is_regular_file(fp, ec)) {
      throw std::runtime_error(fp.string() + ": no fingerprint for device folder " +
                               dev_dir.string());
    }
    ds.fingerprints[device] = fp.string();
    for (const auto& img : images) {
      DatasetItem item{img, device, ""};
      if (!anonymized.empty()) {
        const fs::path rel = fs::path(img).lexically_relative(dev_dir);
        const fs::path dir = fs::path(anonymized) / device / rel.parent_path();
        const std::string stem = fs::path(img).stem().string();
        item.anonymized = FindAnonymized(dir.string(), stem);
        if (item.anonymized.empty()) {
          if (!allow_missing) throw std::runtime_error(MissingMessage(img, dir, stem));
          ds.missing.push_back(img);
          continue;
        }
      }
      ds.items.push_back(item);
    }
  }
  if (ds.items.empty() && ds.missing.empty()) {
    throw std::runtime_error(originals + ": no images found in " + originals +
                             "/<device>/ folders");
  }
  if (ds.items.empty())
    throw std::runtime_error(anonymized + ": none of the originals has an anonymized version");
  return ds;
}

Dataset ReadManifest(const std::string& path, const std::string& fingerprints_dir,
                     bool allow_missing) {
  const auto lines = Lines(ReadFileBytes(path));
  const fs::path base = fs::path(path).parent_path();
  size_t first = 0;
  while (first < lines.size() && lines[first].empty()) ++first;
  if (first == lines.size()) throw std::runtime_error(path + ": empty manifest");
  const auto header = SplitCsv(lines[first], path + " line " + std::to_string(first + 1));
  const int c_image = ColumnIndex(header, "image"), c_device = ColumnIndex(header, "device");
  const int c_fp = ColumnIndex(header, "fingerprint"), c_anon = ColumnIndex(header, "anonymized");
  if (c_image < 0 || c_device < 0 || (c_fp < 0 && fingerprints_dir.empty())) {
    throw std::runtime_error(
        path + ": the header line must name the columns image, device, fingerprint[, anonymized]");
  }
  Dataset ds;
  std::error_code ec;
  for (size_t i = first + 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const std::string where = path + " line " + std::to_string(i + 1);
    const auto f = SplitCsv(lines[i], where);
    auto cell = [&](int c) {
      return c >= 0 && c < static_cast<int>(f.size()) ? f[c] : std::string();
    };
    DatasetItem item{cell(c_image), cell(c_device), ""};
    if (item.original.empty() || item.device.empty())
      throw std::runtime_error(where + ": empty image or device");
    item.original = Resolve(base, item.original);
    if (!fs::is_regular_file(item.original, ec))
      throw std::runtime_error(where + ": " + item.original + ": no such file");
    std::string fp = cell(c_fp);
    if (fp.empty()) {
      if (fingerprints_dir.empty()) throw std::runtime_error(where + ": empty fingerprint");
      fp = DeviceFingerprintPath(fingerprints_dir, item.device);
    } else {
      fp = Resolve(base, fp);
    }
    if (!fs::is_regular_file(fp, ec))
      throw std::runtime_error(where + ": " + fp + ": no such fingerprint file");
    const auto [it, inserted] = ds.fingerprints.emplace(item.device, fp);
    if (!inserted && it->second != fp) {
      throw std::runtime_error(where + ": device " + item.device + " has two fingerprints, " +
                               it->second + " and " + fp);
    }
    if (c_anon >= 0) {
      const std::string anon = cell(c_anon);
      const std::string resolved = anon.empty() ? "" : Resolve(base, anon);
      if (resolved.empty() || !fs::is_regular_file(resolved, ec)) {
        const std::string msg = where + ": " +
                                (resolved.empty() ? "no anonymized file for " + item.original
                                                  : resolved + ": no such anonymized file") +
                                " (--allow-missing skips such images)";
        if (!allow_missing) throw std::runtime_error(msg);
        ds.missing.push_back(item.original);
        continue;
      }
      item.anonymized = resolved;
    }
    ds.items.push_back(item);
  }
  if (ds.items.empty()) throw std::runtime_error(path + ": no images to score");
  return ds;
}

RocSets SplitScores(const std::vector<PairScore>& scores,
                    const std::optional<std::string>& fingerprint) {
  RocSets r;
  for (const auto& s : scores) {
    if (fingerprint && s.fingerprint != *fingerprint) continue;
    const bool pos = s.device == s.fingerprint;
    (pos ? r.pos_ncc : r.neg_ncc).push_back(s.ncc);
    (pos ? r.pos_pce : r.neg_pce).push_back(s.pce);
  }
  return r;
}

DatasetSummary Summarize(const std::vector<PairScore>& scores, double max_fpr) {
  // One PSNR per image (it is repeated on the image's row for every fingerprint).
  std::set<std::string> seen;
  std::vector<std::optional<double>> all_psnr;
  std::map<std::string, std::vector<std::optional<double>>> device_psnr;
  for (const auto& s : scores) {
    if (!seen.insert(s.image).second) continue;
    all_psnr.push_back(s.psnr);
    device_psnr[s.device].push_back(s.psnr);
  }
  DatasetSummary out;
  FillRoc(out.pooled, SplitScores(scores, std::nullopt), max_fpr);
  FillPsnr(out.pooled, all_psnr);
  for (const auto& [device, psnrs] : device_psnr) {
    SetSummary& s = out.per_device[device];
    FillRoc(s, SplitScores(scores, device), max_fpr);
    FillPsnr(s, psnrs);
  }
  return out;
}

std::vector<HistoryPoint> ReadHistory(const std::string& path) {
  const auto lines = Lines(ReadFileBytes(path));
  if (lines.empty()) throw std::runtime_error(path + ": empty history file");
  const auto header = SplitCsv(lines[0], path + " line 1");
  const int c_it = ColumnIndex(header, "iteration"), c_psnr = ColumnIndex(header, "psnr");
  const int c_ncc = ColumnIndex(header, "ncc");
  if (c_it < 0 || c_psnr < 0) {
    throw std::runtime_error(path +
                             ": not a history CSV (the header must name iteration and psnr, as "
                             "dippas anonymize --history writes)");
  }
  std::vector<HistoryPoint> out;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const std::string where = path + " line " + std::to_string(i + 1);
    const auto f = SplitCsv(lines[i], where);
    auto cell = [&](int c) {
      return c >= 0 && c < static_cast<int>(f.size()) ? f[c] : std::string();
    };
    HistoryPoint p;
    double it = 0, v = 0;
    if (!ParseDouble(cell(c_it), it) || !ParseDouble(cell(c_psnr), p.psnr)) {
      throw std::runtime_error(where + ": iteration and psnr must be numbers");
    }
    p.iteration = static_cast<int64_t>(it);
    const std::string ncc = cell(c_ncc);
    if (!ncc.empty()) {
      if (!ParseDouble(ncc, v)) throw std::runtime_error(where + ": ncc must be a number or empty");
      if (std::isfinite(v)) p.ncc = v;
    }
    out.push_back(p);
  }
  if (out.empty()) throw std::runtime_error(path + ": history has no rows");
  return out;
}

Image JpegRoundTrip(const Image& image, int quality) {
  if (quality < 1 || quality > 100) throw std::invalid_argument("JPEG quality must be 1..100");
  cv::Mat m = To8Bit(image);
  if (image.channels == 3) cv::cvtColor(m, m, cv::COLOR_RGB2BGR);
  std::vector<uchar> buf;
  if (!cv::imencode(".jpg", m, buf, {cv::IMWRITE_JPEG_QUALITY, quality})) {
    throw std::runtime_error("cannot encode the image as JPEG");
  }
  cv::Mat back = cv::imdecode(buf, cv::IMREAD_UNCHANGED);
  if (back.empty() || back.channels() != image.channels)
    throw std::runtime_error("cannot decode the JPEG round trip");
  if (image.channels == 3) cv::cvtColor(back, back, cv::COLOR_BGR2RGB);
  Image out = image;
  out.bit_depth = 8;
  cv::Mat f;
  back.convertTo(f, CV_32F);
  f = f.reshape(1, 1);
  out.data.assign(f.ptr<float>(0), f.ptr<float>(0) + f.total());
  return out;
}

std::vector<uint8_t> EdgeMask(const Image& image, double low, double high, int dilate) {
  cv::Mat gray = To8Bit(image);
  if (image.channels == 3) cv::cvtColor(gray, gray, cv::COLOR_RGB2GRAY);
  cv::Mat edges;
  cv::Canny(gray, edges, low, high);
  if (dilate > 0) {
    cv::dilate(edges, edges, cv::getStructuringElement(cv::MORPH_RECT, {3, 3}), {-1, -1}, dilate);
  }
  std::vector<uint8_t> mask(edges.total());
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = edges.data[i] ? 1 : 0;
  return mask;
}

}  // namespace dippas
