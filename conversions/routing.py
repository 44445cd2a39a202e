from django.urls import path

from conversions import consumers

websocket_urlpatterns = [
    path("ws/conversion/<str:conversion_id>", consumers.OriginalConversionConsumer.as_asgi()),
    path("ws/v1/conversions/<str:conversion_id>", consumers.ConversionConsumer.as_asgi()),
    path("ws/v1/batches/<str:batch_id>", consumers.BatchConsumer.as_asgi()),
    path("ws/v1/queue", consumers.QueueConsumer.as_asgi()),
]
