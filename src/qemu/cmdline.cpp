// QEMU command-line parsing for --qemu: the VM name and the disk images with
// their cache/aio modes, from -name, -drive, -blockdev (JSON or key=value)
// and -hda..-hdd.
#include <nlohmann/json.hpp>

#include <string_view>
#include <unordered_map>

#include "qemu/qemu.h"

namespace bdt::qemu {

using json = nlohmann::json;

std::vector<std::pair<std::string, std::string>> parse_opts(std::string_view s,
                                                            std::string_view implied_key) {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::string> parts;
  std::string cur;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == ',') {
      if (i + 1 < s.size() && s[i + 1] == ',') {
        cur += ',';
        ++i;
        continue;
      }
      parts.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    cur += s[i];
  }
  parts.push_back(std::move(cur));
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.empty()) continue;
    auto eq = p.find('=');
    if (eq == std::string::npos) {
      if (i == 0 && !implied_key.empty())
        out.emplace_back(std::string(implied_key), p);
      else
        out.emplace_back(p, "on");
      continue;
    }
    out.emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  return out;
}

namespace {

std::optional<bool> as_bool(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string()) {
    auto s = v.get<std::string>();
    if (s == "on" || s == "yes" || s == "true") return true;
    if (s == "off" || s == "no" || s == "false") return false;
  }
  return std::nullopt;
}

std::string as_str(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

// key=value options with dotted keys ("cache.direct=on", "file.filename=x")
// as a nested JSON object, so both -blockdev syntaxes share one walker.
json opts_to_json(const std::vector<std::pair<std::string, std::string>>& kv) {
  json o = json::object();
  for (const auto& [k, v] : kv) {
    json* cur = &o;
    size_t start = 0;
    while (true) {
      auto dot = k.find('.', start);
      std::string part = k.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (dot == std::string::npos) {
        (*cur)[part] = v;
        break;
      }
      json& next = (*cur)[part];
      if (!next.is_object()) next = json::object();
      cur = &next;
      start = dot + 1;
    }
  }
  return o;
}

// The cache= shorthand: which modes open the image with O_DIRECT.
std::optional<bool> direct_of_cache(const std::string& cache) {
  if (cache == "none" || cache == "directsync") return true;
  if (cache == "writeback" || cache == "writethrough" || cache == "unsafe") return false;
  return std::nullopt;
}

struct Node {
  std::string name, driver, filename, aio, cache;
  std::optional<bool> direct;
  bool read_only = false;
  std::string child;  // node name of its "file" child
};

// Flattens one -blockdev / -drive object (and nested "file" objects) into
// nodes; returns the object's node name. At most kMaxBlockNodes nodes per
// command line: the rest are counted in *dropped, not parsed.
std::string walk(const json& o, std::vector<Node>& nodes, int& anon, size_t* dropped, int depth = 0) {
  if (!o.is_object() || depth > 8) return {};
  if (nodes.size() >= kMaxBlockNodes) {
    ++*dropped;
    return {};
  }
  Node n;
  n.name = as_str(o, "node-name");
  if (n.name.empty()) n.name = "#anon" + std::to_string(anon++);
  n.driver = as_str(o, "driver");
  n.filename = as_str(o, "filename");
  n.aio = as_str(o, "aio");
  n.cache = as_str(o, "cache");
  if (auto c = o.find("cache"); c != o.end() && c->is_object())
    if (auto d = c->find("direct"); d != c->end()) n.direct = as_bool(*d);
  if (!n.direct && !n.cache.empty()) n.direct = direct_of_cache(n.cache);
  for (const char* k : {"read-only", "readonly"})
    if (auto r = o.find(k); r != o.end()) n.read_only = as_bool(*r).value_or(false);
  if (auto f = o.find("file"); f != o.end()) {
    if (f->is_string())
      n.child = f->get<std::string>();
    else if (f->is_object())
      n.child = walk(*f, nodes, anon, dropped, depth + 1);
  }
  std::string name = n.name;
  nodes.push_back(std::move(n));
  return name;
}

// Node name -> the node that names it as its "file" (the last one wins).
// Built once per command line: the lookups up the chain are then linear in
// the number of nodes (a scan per node was quadratic: 64 K nodes took 15 s).
using Parents = std::unordered_map<std::string_view, const Node*>;
Parents parents_of(const std::vector<Node>& nodes) {
  Parents by_child;
  by_child.reserve(nodes.size());
  for (const auto& p : nodes)
    if (!p.child.empty()) by_child[p.child] = &p;
  return by_child;
}

const Node* parent_of(const Parents& parents, const std::string& name) {
  auto it = parents.find(name);
  return it == parents.end() ? nullptr : it->second;
}

DriveSpec from_file_node(const Node& file, const Parents& parents, const std::string& option) {
  DriveSpec d;
  d.path = file.filename;
  d.option = option;
  d.aio = file.aio;
  d.cache = file.cache;
  d.direct = file.direct;
  d.read_only = file.read_only;
  d.node_name = file.name.rfind("#anon", 0) == 0 ? std::string() : file.name;
  // The node that uses this one as its "file" is the format (qcow2, raw, ...);
  // cache.direct / read-only set there apply to the protocol node too.
  const Node* parent = parent_of(parents, file.name);
  for (int depth = 0; parent && depth < 8; ++depth) {
    if (d.format.empty() && parent->driver != "file") d.format = parent->driver;
    if (!d.direct && parent->direct) d.direct = parent->direct;
    if (d.cache.empty()) d.cache = parent->cache;
    if (d.aio.empty()) d.aio = parent->aio;
    d.read_only = d.read_only || parent->read_only;
    parent = parent_of(parents, parent->name);
  }
  return d;
}

}  // namespace

CommandLine parse_command_line(const std::vector<std::string>& argv) {
  CommandLine cl;
  std::vector<Node> nodes;        // all -blockdev nodes (they reference each other by name)
  int anon = 0;
  for (size_t i = 1; i < argv.size(); ++i) {
    std::string opt = argv[i];
    if (opt.rfind("--", 0) == 0) opt.erase(0, 1);
    if (opt.empty() || opt[0] != '-') continue;
    if (i + 1 >= argv.size()) break;
    const std::string& arg = argv[i + 1];
    if (opt == "-name") {
      ++i;
      for (const auto& [k, v] : parse_opts(arg, "guest"))
        if (k == "guest") cl.vm_name = v;
    } else if (opt == "-blockdev") {
      ++i;
      if (nodes.size() >= kMaxBlockNodes) {  // not even parsed
        ++cl.nodes_dropped;
        continue;
      }
      if (!arg.empty() && arg[0] == '{') {
        auto j = json::parse(arg, nullptr, /*allow_exceptions=*/false);
        if (j.is_object()) walk(j, nodes, anon, &cl.nodes_dropped);
      } else {
        walk(opts_to_json(parse_opts(arg)), nodes, anon, &cl.nodes_dropped);
      }
    } else if (opt == "-drive") {
      ++i;
      auto kv = parse_opts(arg);
      json o = opts_to_json(kv);
      std::string file;
      if (auto f = o.find("file"); f != o.end() && f->is_string()) file = f->get<std::string>();
      if (file.rfind("json:", 0) == 0) {
        auto j = json::parse(file.substr(5), nullptr, false);
        if (j.is_object()) {
          // json:{...} describes the node graph under this drive
          o["file"] = j;
          file.clear();
        } else {
          continue;
        }
      }
      if (!file.empty()) {
        DriveSpec d;
        d.path = file;
        d.option = "-drive";
        d.format = as_str(o, "format");
        d.cache = as_str(o, "cache");
        d.aio = as_str(o, "aio");
        d.direct = direct_of_cache(d.cache);
        if (auto c = o.find("cache"); c != o.end() && c->is_object())
          if (auto dd = c->find("direct"); dd != c->end()) d.direct = as_bool(*dd);
        for (const char* k : {"readonly", "read-only"})
          if (auto r = o.find(k); r != o.end()) d.read_only = as_bool(*r).value_or(false);
        if (as_str(o, "media") == "cdrom") d.read_only = true;
        d.node_name = as_str(o, "id");
        cl.drives.push_back(std::move(d));
      } else if (o.contains("file")) {
        std::vector<Node> dn;
        int a = 0;
        o["driver"] = as_str(o, "format");
        walk(o, dn, a, &cl.nodes_dropped);
        const Parents dp = parents_of(dn);
        for (const auto& n : dn)
          if (n.driver == "file" && !n.filename.empty())
            cl.drives.push_back(from_file_node(n, dp, "-drive"));
      }
    } else if (opt == "-hda" || opt == "-hdb" || opt == "-hdc" || opt == "-hdd" ||
               opt == "-cdrom") {
      ++i;
      DriveSpec d;
      d.path = arg;
      d.option = opt;
      d.read_only = opt == "-cdrom";
      cl.drives.push_back(std::move(d));
    }
  }
  const Parents parents = parents_of(nodes);
  for (const auto& n : nodes)
    if (n.driver == "file" && !n.filename.empty())
      cl.drives.push_back(from_file_node(n, parents, "-blockdev"));
  if (cl.drives.size() > kMaxBlockNodes) {  // -drive file=... and -hda add drives without nodes
    cl.nodes_dropped += cl.drives.size() - kMaxBlockNodes;
    cl.drives.resize(kMaxBlockNodes);
  }
  return cl;
}

}  // namespace bdt::qemu
