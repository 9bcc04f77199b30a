using Async.Serving.Hosting;
using Async.Serving.Worker.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.AddServingDefaults();
builder.AddInference();
builder.AddWorkerBus();
builder.Build().Run();
