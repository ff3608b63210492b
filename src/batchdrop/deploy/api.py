"""The optional query API: an HTTP API (API Gateway) in front of batchdrop.api on Lambda.

IAM authorization by default (callers sign requests with SigV4); the function's role may only
read the table and the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import resources as r
from .policy import SINGLE_TABLE, Json, TableGrant, api_statements, getatt, ref, role, sub
from .settings import DeploySettings

API_HANDLER = "batchdrop.api.lambda_handler.handler"
ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
    '"caller":"$context.identity.caller","user":"$context.identity.user",'
    '"requestTime":"$context.requestTime","method":"$context.httpMethod",'
    '"path":"$context.path","status":"$context.status",'
    '"responseLength":"$context.responseLength",'
    '"integrationError":"$context.integrationErrorMessage"}'
)


def api_resources(
    s: DeploySettings,
    env: Json,
    tables: Sequence[TableGrant] = SINGLE_TABLE,
    reports: tuple[Json | str, str] | None = None,
) -> tuple[dict[str, Json], dict[str, Any]]:
    """The API's resources and outputs; ``env`` is the loader's environment (same config),
    ``tables`` the tables it reads (every feed's).

    One ``$default`` route proxies every method and path to the function, which routes them
    itself (``/feeds/{feed}/...`` included): API Gateway knows no path of its own."""
    res: dict[str, Json] = {}
    res["ApiLogGroup"] = r.log_group(s)
    res["ApiAccessLogGroup"] = r.log_group(s)
    res["ApiRole"] = role(
        "lambda.amazonaws.com", "batchdrop-api", api_statements(s, tables, reports)
    )
    fn = r.function(s, API_HANDLER, "ApiRole", "ApiLogGroup", env, memory=512, timeout=29)
    r.skip(
        fn,
        ("CKV_AWS_115", "concurrency is bounded by the API's throttling settings"),
        ("CKV_AWS_116", "invoked synchronously by API Gateway: errors go to the caller"),
    )
    res["ApiFunction"] = fn
    res["HttpApi"] = {
        "Type": "AWS::ApiGatewayV2::Api",
        "Properties": {
            "Name": sub("${AWS::StackName}-api"),
            "ProtocolType": "HTTP",
            "Description": "batchdrop query API: items by key, and the run ledger",
        },
    }
    res["ApiIntegration"] = {
        "Type": "AWS::ApiGatewayV2::Integration",
        "Properties": {
            "ApiId": ref("HttpApi"),
            "IntegrationType": "AWS_PROXY",
            "IntegrationUri": getatt("ApiFunction", "Arn"),
            "PayloadFormatVersion": "2.0",
        },
    }
    route: Json = {
        "Type": "AWS::ApiGatewayV2::Route",
        "Properties": {
            "ApiId": ref("HttpApi"),
            "RouteKey": "$default",
            "AuthorizationType": "AWS_IAM" if s.api_auth == "iam" else "NONE",
            "Target": {"Fn::Join": ["/", ["integrations", ref("ApiIntegration")]]},
        },
    }
    if s.api_auth == "none":
        r.skip(route, ("CKV_AWS_309", "deploy.api_auth is 'none': the API is public on purpose"))
    res["ApiRoute"] = route
    res["ApiStage"] = {
        "Type": "AWS::ApiGatewayV2::Stage",
        "Properties": {
            "ApiId": ref("HttpApi"),
            "StageName": "$default",
            "AutoDeploy": True,
            "AccessLogSettings": {
                "DestinationArn": getatt("ApiAccessLogGroup", "Arn"),
                "Format": ACCESS_LOG_FORMAT,
            },
            "DefaultRouteSettings": {"ThrottlingBurstLimit": 100, "ThrottlingRateLimit": 50},
        },
    }
    res["ApiInvokePermission"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": ref("ApiFunction"),
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": sub(
                "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/*"
            ),
            "SourceAccount": ref("AWS::AccountId"),
        },
    }
    outputs = {"ApiUrl": getatt("HttpApi", "ApiEndpoint"), "ApiFunction": ref("ApiFunction")}
    return res, outputs
