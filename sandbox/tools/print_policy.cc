// vigo-policy-table: prints the seccomp tables for docs and goldens.
//
//   vigo-policy-table                 markdown tables of every policy
//   vigo-policy-table --pfc broker    libseccomp pseudo filter code (golden format)
//   vigo-policy-table --write-goldens DIR   writes DIR/<process>.x86_64.pfc
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "sandbox/seccomp_policy.h"

namespace {

using vigo::sandbox::AllPolicies;
using vigo::sandbox::Policy;

constexpr char kHelp[] =
    "usage: vigo-policy-table [--pfc PROCESS | --write-goldens DIR]\n"
    "Prints Vigo's seccomp policy tables as markdown (default), or the compiled\n"
    "filter of PROCESS (broker | worker | applier | exec_child |\n"
    "exec_child_no_network) as libseccomp PFC.\n";

void PrintMarkdown(const Policy& p) {
  std::string md = vigo::sandbox::PolicyMarkdown(p);
  std::fwrite(md.data(), 1, md.size(), stdout);
  std::printf("\n");
}

const Policy* Find(const char* name) {
  for (const Policy* p : AllPolicies()) {
    if (std::strcmp(p->process, name) == 0) return p;
  }
  return nullptr;
}

int Pfc(const Policy& p, std::string* out) {
  auto filter = vigo::sandbox::CompilePolicy(p, vigo::sandbox::GoldenCompileOptions());
  if (!filter.ok()) {
    std::fprintf(stderr, "vigo-policy-table: %s\n", std::string(filter.status().message()).c_str());
    return 1;
  }
  auto pfc = filter->ExportPfc();
  if (!pfc.ok()) {
    std::fprintf(stderr, "vigo-policy-table: %s\n", std::string(pfc.status().message()).c_str());
    return 1;
  }
  *out = *pfc;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kHelp, stdout);
    return 0;
  }
  if (argc == 1) {
    for (const Policy* p : AllPolicies()) PrintMarkdown(*p);
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "--pfc") == 0) {
    const Policy* p = Find(argv[2]);
    if (p == nullptr) {
      std::fprintf(stderr, "vigo-policy-table: unknown process %s\n", argv[2]);
      return 2;
    }
    std::string pfc;
    if (int rc = Pfc(*p, &pfc); rc != 0) return rc;
    std::fwrite(pfc.data(), 1, pfc.size(), stdout);
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "--write-goldens") == 0) {
    for (const Policy* p : AllPolicies()) {
      std::string pfc;
      if (int rc = Pfc(*p, &pfc); rc != 0) return rc;
      std::string path = std::string(argv[2]) + "/" + p->process + ".x86_64.pfc";
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << pfc;
      if (!f.good()) {
        std::fprintf(stderr, "vigo-policy-table: cannot write %s\n", path.c_str());
        return 1;
      }
      std::printf("wrote %s\n", path.c_str());
    }
    return 0;
  }
  std::fputs(kHelp, stderr);
  return 2;
}
