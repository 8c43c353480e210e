"""mosbridge: Twilio Media Streams <-> OpenAI Realtime bridge that measures call quality."""

__version__ = "0.1.0"
