#include "backends/endpoint/endpoint_url.h"

#include <cctype>

namespace cb {

std::string EndpointUrl::Base() const {
  return scheme + "://" + host + ":" + std::to_string(port) + base_path;
}

std::string EndpointUrl::For(const std::string& route) const { return Base() + route; }

std::string EndpointUrl::HostPort() const { return host + ":" + std::to_string(port); }

bool IsEndpointBackend(const std::string& backend) { return backend.starts_with("endpoint:"); }

Status ParseEndpointUrl(const std::string& text, const std::string& where, EndpointUrl* out) {
  // Never echo credentials: user:secret@ becomes ***@ in messages.
  std::string shown = text;
  if (const size_t at = shown.find('@'), sep = shown.find("://");
      at != std::string::npos && sep != std::string::npos && at > sep &&
      shown.find('/', sep + 3) > at) {
    shown.replace(sep + 3, at - sep - 3, "***");
  }
  auto bad = [&](const std::string& what) {
    return Status::InvalidInput(where + ": '" + shown + "': " + what +
                                " (expected http[s]://HOST[:PORT][/PATH], e.g. "
                                "http://127.0.0.1:8000/v1)");
  };
  EndpointUrl u;
  const size_t sep = text.find("://");
  if (sep == std::string::npos) return bad("no scheme");
  u.scheme = text.substr(0, sep);
  for (char& c : u.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (u.scheme != "http" && u.scheme != "https") {
    return bad("unsupported scheme '" + u.scheme + "'; allowed: http, https");
  }
  std::string rest = text.substr(sep + 3);
  if (rest.find_first_of("?#") != std::string::npos) return bad("queries and fragments");
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  u.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  if (authority.find('@') != std::string::npos) {
    return bad(
        "credentials in the URL are refused; put the key in an environment variable "
        "and pass --api-key-env NAME");
  }
  std::string port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) return bad("unclosed '[' in the host");
    u.host = authority.substr(0, close + 1);
    const std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after the IPv6 address");
      port = after.substr(1);
    }
  } else {
    const size_t colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty() || u.host == "[]") return bad("no host");
  for (char c : u.host) {
    if (std::isspace(static_cast<unsigned char>(c))) return bad("a space in the host");
  }
  u.port = u.scheme == "https" ? 443 : 80;
  if (!port.empty()) {
    int p = 0;
    for (char c : port) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || p > 65535) return bad("bad port");
      p = p * 10 + (c - '0');
    }
    if (p < 1 || p > 65535) return bad("port must be in 1-65535");
    u.port = p;
  }
  while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
  if (u.base_path.empty()) u.base_path = "/v1";
  for (char c : u.base_path) {
    if (std::isspace(static_cast<unsigned char>(c))) return bad("a space in the path");
  }
  *out = std::move(u);
  return Status::Ok();
}

Status ParseEndpointBackend(const std::string& backend, const std::string& where,
                            EndpointUrl* out) {
  if (!IsEndpointBackend(backend)) {
    return Status::InvalidInput(where + ": field 'backend': '" + backend + "' is not endpoint:URL");
  }
  return ParseEndpointUrl(backend.substr(9), where + ": field 'backend'", out);
}

}  // namespace cb
