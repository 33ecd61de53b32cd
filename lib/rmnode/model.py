"""The node config of ESP RainMaker: node info, devices and their params, as JSON text."""

# esp-rainmaker v1.16.0 components/esp_rainmaker/src/core/esp_rmaker_node_config.c: the config
# is {"node_id", "config_version": "2020-03-20" (ESP_RMAKER_CONFIG_VERSION,
# include/esp_rmaker_core.h), "info": {"name", "fw_version", "type", "model", "project_name",
# "platform"}, "devices": [{"name", "type", "primary", "params": [{"name", "type",
# "data_type", "properties", "bounds", "valid_strs", "ui_type"}]}]}. Loaded when the config is
# made (and kept once an app has devices).

CONFIG_VERSION = "2020-03-20"
# A value's JSON type as RainMaker's config names it (esp_rmaker_report_data_type).
_DATA_TYPES = (
    (bool, "bool"),
    (int, "int"),
    (float, "float"),
    (str, "string"),
    (dict, "object"),
    (list, "array"),
)


class Device:
    """A device of the node config (esp_rmaker_device_create): name, type, primary param, and
    params; ``values`` holds each param's current value, which report_params() sends."""

    def __init__(self, name, type=None, primary=None):
        self.name = name
        self.type = type
        self.primary = primary
        self.params = []
        self.values = {}

    def add_param(
        self, name, value, type=None, ui_type=None, write=True, bounds=None, valid_strs=None
    ):
        """A param with its initial value (its JSON type makes the data type); bounds: (min,
        max) or (min, max, step); valid_strs: the strings a string param may take."""
        data_type = None
        for t, n in _DATA_TYPES:
            if data_type is None and isinstance(value, t):
                data_type = n
        if data_type is None:
            raise ValueError("param %s: no RainMaker data type for %r" % (name, value))
        self.params.append((name, type, data_type, write, ui_type, bounds, valid_strs))
        self.values[name] = value
        return self

    def config(self):
        out = {"name": self.name}
        if self.type:
            out["type"] = self.type
        if self.primary:
            out["primary"] = self.primary
        params = []
        for name, type, data_type, write, ui_type, bounds, valid_strs in self.params:
            p = {"name": name, "data_type": data_type}
            if type:
                p["type"] = type
            p["properties"] = ["read", "write"] if write else ["read"]
            if bounds:
                b = {"min": bounds[0], "max": bounds[1]}
                if len(bounds) > 2 and bounds[2]:
                    b["step"] = bounds[2]
                p["bounds"] = b
            if valid_strs:
                p["valid_strs"] = list(valid_strs)
            if ui_type:
                p["ui_type"] = ui_type
            params.append(p)
        if params:
            out["params"] = params
        return out


def config_json(node):
    # The node config of `node` (a rmnode.node.Node) as JSON text.
    import json

    obj = {"node_id": node.node_id, "config_version": CONFIG_VERSION, "info": node.info}
    if node.devices:
        obj["devices"] = [d.config() for d in node.devices]
    return json.dumps(obj)
