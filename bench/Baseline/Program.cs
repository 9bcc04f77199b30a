using Async.Serving.Baseline;

// What a team without Async.Serving would write: one endpoint that runs the model on the request's
// thread, one ONNX Runtime session for the process, shared by every concurrent request.
var builder = WebApplication.CreateBuilder(args);
builder.AddEmbeddingModel();
var app = builder.Build();
app.MapEmbedApi();
app.Run();
