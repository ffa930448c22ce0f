#include "tokenize/gzip.h"

#include <zlib.h>

#include "common/error.h"

namespace evomerge::tok {

std::string read_gzip_file(const std::filesystem::path& path, size_t max_bytes) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail("tokenizer", "{}: cannot open", path.string());
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      gzclose(f);
      fail("tokenizer", "{}: inflates to more than {} bytes", path.string(), max_bytes);
    }
  }
  int err = 0;
  std::string msg = n < 0 ? gzerror(f, &err) : "";
  gzclose(f);
  if (n < 0) fail("tokenizer", "{}: corrupt gzip data: {}", path.string(), msg);
  return out;
}

}  // namespace evomerge::tok
