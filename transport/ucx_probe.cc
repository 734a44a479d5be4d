#include "transport/ucx_probe.h"

#include <ucp/api/ucp.h>
#include <uct/api/uct.h>

#include <cstdlib>

#include <fmt/format.h>

namespace conveyor::transport {

UcxProbe probe_ucx() {
  UcxProbe p;
  p.version = ucp_get_version_string();
  if (const char* tls = std::getenv("UCX_TLS")) p.ucx_tls = tls;

  uct_component_h* components = nullptr;
  unsigned num_components = 0;
  if (uct_query_components(&components, &num_components) != UCS_OK) {
    p.note += "cannot list UCT components; ";
  } else {
    for (unsigned c = 0; c < num_components; ++c) {
      uct_component_attr_t cattr{};
      cattr.field_mask = UCT_COMPONENT_ATTR_FIELD_NAME | UCT_COMPONENT_ATTR_FIELD_MD_RESOURCE_COUNT;
      if (uct_component_query(components[c], &cattr) != UCS_OK) continue;
      std::vector<uct_md_resource_desc_t> mds(cattr.md_resource_count);
      cattr.field_mask = UCT_COMPONENT_ATTR_FIELD_MD_RESOURCES;
      cattr.md_resources = mds.data();
      if (cattr.md_resource_count == 0 || uct_component_query(components[c], &cattr) != UCS_OK)
        continue;
      for (auto& md_res : mds) {
        uct_md_config_t* md_config = nullptr;
        if (uct_md_config_read(components[c], nullptr, nullptr, &md_config) != UCS_OK) continue;
        uct_md_h md = nullptr;
        ucs_status_t st = uct_md_open(components[c], md_res.md_name, md_config, &md);
        uct_config_release(md_config);
        if (st != UCS_OK) continue;
        uct_tl_resource_desc_t* tls = nullptr;
        unsigned num_tls = 0;
        if (uct_md_query_tl_resources(md, &tls, &num_tls) == UCS_OK) {
          for (unsigned t = 0; t < num_tls; ++t)
            p.resources.push_back({tls[t].tl_name, tls[t].dev_name});
          uct_release_tl_resource_list(tls);
        }
        uct_md_close(md);
      }
    }
    uct_release_component_list(components);
  }

  ucp_config_t* config = nullptr;
  if (ucp_config_read(nullptr, nullptr, &config) == UCS_OK) {
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_TAG;
    ucp_context_h ctx = nullptr;
    ucs_status_t st = ucp_init(&params, config, &ctx);
    ucp_config_release(config);
    if (st == UCS_OK) {
      ucp_context_attr_t attr{};
      attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
      if (ucp_context_query(ctx, &attr) == UCS_OK)
        p.cuda_memory = (attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;
      ucp_cleanup(ctx);
    } else {
      p.note += fmt::format("ucp_init failed: {}; ", ucs_status_string(st));
    }
  }
  return p;
}

}  // namespace conveyor::transport
