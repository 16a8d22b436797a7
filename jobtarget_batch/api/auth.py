"""`POST /api/v1/auth/token/`: trade a username and password for the user's API token."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.response import Response
from rest_framework.views import APIView


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True, help_text="Send it as `Authorization: Token <token>`.")


class TokenCredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class AuthTokenView(APIView):
    public = True
    authentication_classes = ()
    permission_classes = ()

    @extend_schema(
        operation_id="auth_token_create", request=TokenCredentialsSerializer, responses={200: TokenSerializer},
        summary="Get the API token of a user",
        description="Wrong credentials or an inactive user give 400. Tokens can also be made in the admin.",
    )
    def post(self, request):
        credentials = TokenCredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        serializer = AuthTokenSerializer(data=credentials.validated_data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key}, status=status.HTTP_200_OK)
