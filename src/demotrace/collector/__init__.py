"""The collector: the server that receives uploads and keeps the lake."""
