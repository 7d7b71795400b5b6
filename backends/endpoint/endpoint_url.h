#pragma once

#include <string>

#include "harness/core/status.h"

namespace cb {

/// The base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.
struct EndpointUrl {
  std::string scheme;     ///< "http" or "https"
  std::string host;       ///< name or address (IPv6 in brackets, as given)
  int port = 0;           ///< given, else 80 / 443
  std::string base_path;  ///< e.g. "/v1", no trailing '/'

  /// scheme://host:port/base_path
  std::string Base() const;
  /// Base() + route, e.g. For("/completions").
  std::string For(const std::string& route) const;
  /// host:port, a name for the serving stack in labels and file names.
  std::string HostPort() const;
};

/// True for "endpoint:URL".
bool IsEndpointBackend(const std::string& backend);

/// Parses an endpoint base URL: http or https, a host, an optional port, an optional path
/// ("/v1" when empty). Credentials in the URL, queries and fragments are refused (the key
/// goes in an environment variable named by --api-key-env, so no result file or process
/// listing shows it). Errors (kInvalidInput) start with `where`.
Status ParseEndpointUrl(const std::string& text, const std::string& where, EndpointUrl* out);

/// The URL part of "endpoint:URL" parsed; errors name the backend field.
Status ParseEndpointBackend(const std::string& backend, const std::string& where, EndpointUrl* out);

}  // namespace cb
