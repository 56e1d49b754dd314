"""Serving layer: the Dynamo platform, and per endpoint a DynamoGraphDeployment laid out from its sizing file,
an optional Gateway API Inference Extension InferencePool with its endpoint picker and HTTPRoutes, and the
endpoint's serving telemetry."""
from components.serving.args import EndpointArgs, TopologyPlacement
from components.serving.endpoint import ServingEndpoint
from components.serving.gateway import EndpointPicker, EndpointPickerArgs
from components.serving.platform import ServingPlatform, ServingPlatformArgs
from components.serving.route import InferenceRoute, RouteArgs

__all__ = ["EndpointArgs", "EndpointPicker", "EndpointPickerArgs", "InferenceRoute", "RouteArgs", "ServingEndpoint",
           "ServingPlatform", "ServingPlatformArgs", "TopologyPlacement"]
