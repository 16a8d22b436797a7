"""`POST /api/v1/auth/token/`: trade a username and password for the user's API token."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from jobtarget_batch.lockout import lockout_message, lockout_seconds


class LockedOut(exceptions.Throttled):
    """django-axes locked this username for this address: the same lockout as the admin login."""

    default_code = "locked_out"


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True, help_text="Send it as `Authorization: Token <token>`.")


class TokenCredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class AuthTokenView(APIView):
    public = True
    authentication_classes = ()
    permission_classes = ()
    # Password guessing: a few tries a minute per client address (REST_FRAMEWORK rate "auth").
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        operation_id="auth_token_create", request=TokenCredentialsSerializer, responses={200: TokenSerializer},
        summary="Get the API token of a user",
        description="Wrong credentials or an inactive user give 400; too many tries from one address, or a "
        "user locked out after repeated wrong passwords (as in the admin), give 429 with Retry-After. "
        "Tokens can also be made in the admin.",
    )
    def post(self, request):
        credentials = TokenCredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        serializer = AuthTokenSerializer(data=credentials.validated_data, context={"request": request})
        valid = serializer.is_valid()
        # django-axes flags the request it was given (this DRF request) when the user is locked out.
        if getattr(request, "axes_locked_out", False) or getattr(request._request, "axes_locked_out", False):
            raise LockedOut(wait=lockout_seconds(), detail=lockout_message())
        if not valid:
            raise exceptions.ValidationError(serializer.errors)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key}, status=status.HTTP_200_OK)
